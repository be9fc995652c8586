"""What needs doing, at a glance: the partner's customers with their licence
figures, a customer's own summary, batches ending soon and "Renew same quantity".

The partner dashboard is one grouped statement over licence_tally (a few rows
per customer, see docs/architecture.md), licence_batch and licence_order, for
every customer under the wing at once, so it can sort and page 2,000 customers
by any figure without a query per row.

figures: the customer table and its kept figures; wing_batches: batches ending
soon or between two dates, in words; same_quantity: "Renew same quantity";
customer_summary: the customer's own summary.
"""
