"""The billing tick's renewal of one customer's online subscription, with the clock
moved an hour past its term's end, against the database and card processor of this
process's environment (DATABASE_URL, PAYMENT_PROCESSOR, STRIPE_*): what a worker
would do a year on, for a browser test whose `portal serve` has a database of its
own. Prints what happened as one line of JSON.

    python -m tests.renew_in_child "<customer name>"

Imports nothing of the test suite's: tests/conftest.py would point the portal at
the test run's own database."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta


async def renew(customer: str) -> dict:
    from portal.domain.billing.renewal import online
    from portal.services import build_services
    from portal.settings import get_settings
    from portal.tables import Company
    from portal.tables.billing import Charge, Invoice, Subscription

    company = await Company.select(Company.id).where(Company.name == customer).first()
    assert company is not None
    sub = await Subscription.select().where(Subscription.company == company["id"]).first()
    assert sub is not None
    end = sub["term_end"]
    counts = await online.renew_due(end + timedelta(hours=1), processor=build_services(get_settings()).processor)
    invoice = await Invoice.select().where((Invoice.subscription == sub["id"]) & (Invoice.kind == "renewal")).first()
    assert invoice is not None
    charge = await Charge.select().where(Charge.invoice == invoice["id"]).first()
    assert charge is not None
    renewed = await Subscription.select().where(Subscription.id == sub["id"]).first()
    assert renewed is not None
    return {
        "counts": counts,
        "old_end": end.isoformat(),
        "new_start": renewed["term_start"].isoformat(),
        "invoice": invoice["id"],
        "status": invoice["status"],
        "intent": charge["processor_ref"],
        "charge": charge["status"],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(renew(sys.argv[1]))))
