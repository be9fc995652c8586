"""Bulk actions from the Admin Dashboard, with one summary.

A partner manager ticks customers (or rows of "Ending in the next 30 days",
or of Requested Orders), or asks for every match of the list's filter, and
chooses an action: Assign selected, Renew selected, Allocate free seats, Turn on
automatic renewal. `selection` resolves what that covers, set-based, and says it
before (`Plan`); `runs` records a confirmed plan as a run with one item per
customer, batch or order, once per confirmation key; `apply` works through the
items, each claimed, applied through the rule that owns it (orders.decisions,
dashboard.same_quantity, licences.allocation, licences.auto_renewal) and
audited in one transaction, so a worker killed mid-run leaves each item either
done or waiting, never half done or done twice."""
