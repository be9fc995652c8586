"""The renewal job through real arq workers on Redis: two workers at
once, the tick queued twice and more chunk jobs than needed, then the tick again
the same day: each term invoiced and charged once. Both engines."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import RedisSettings, create_pool

from portal import db
from portal.domain.billing import payments
from portal.domain.billing.money import term_end
from portal.domain.companies import insert_company
from portal.jobs.billing import BILLING_FUNCTIONS
from portal.services import Services
from portal.tables import LicenceBatch
from portal.tables.billing import Charge, Invoice, Subscription
from tests import support
from tests.factories import T0
from tests.test_billing_renewal import subscribe

REDIS_URL = os.environ["PORTAL_TEST_REDIS"]  # the run's own server (tests/redis_server.py)
CUSTOMERS = 9


@pytest.fixture
def processor():
    new = payments.TestProcessor()
    return new


async def customers(tree) -> list[dict]:
    async with db.write_transaction():
        more = [
            await insert_company(f"Renewing {n}", "customer", tree.partner if n % 2 else tree.sub, T0)
            for n in range(CUSTOMERS - 3)
        ]
    return [tree.direct, tree.north, tree.other_customer, *more]


async def two_workers(processor):
    """Two workers, each handed the services as `portal worker` hands them at start-up."""
    ctx = {"services": Services(processor)}
    return await asyncio.gather(
        support.run_burst_worker(BILLING_FUNCTIONS, REDIS_URL, ctx=dict(ctx)),
        support.run_burst_worker(BILLING_FUNCTIONS, REDIS_URL, ctx=dict(ctx)),
    )


@pytest.mark.redis
async def test_two_workers_renew_each_subscription_once(tree, processor):
    # The tick takes the real clock: terms ending within the next day are due.
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=12)
    subs = [await subscribe(company, end=end) for company in await customers(tree)]
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    await pool.flushdb()  # on SQLite runs clean_state does not flush this database
    try:
        # The tick twice (a retried tick, two workers starting), and chunks of 2 queued besides: more than needed.
        await pool.enqueue_job("billing_tick", _job_id="tick:a")
        await pool.enqueue_job("billing_tick", _job_id="tick:b")
        for n in range(8):
            await pool.enqueue_job("renew_chunk", 2, _job_id=f"chunk:{n}")
        first, second = await two_workers(processor)
        assert first.jobs_failed + second.jobs_failed == 0
        assert first.jobs_complete + second.jobs_complete >= 10

        invoices = await Invoice.select().order_by(Invoice.id)
        assert sorted(i["subscription"] for i in invoices) == sorted(s["id"] for s in subs)
        assert {i["status"] for i in invoices} == {"paid"}
        charges = await Charge.select().order_by(Charge.id)
        assert sorted(c["invoice"] for c in charges) == sorted(i["id"] for i in invoices)
        assert {(c["attempt"], c["status"]) for c in charges} == {(1, "succeeded")}
        assert sorted(processor.calls) == sorted(f"{i['id']}:1" for i in invoices)  # each asked once
        new = await LicenceBatch.select().where(LicenceBatch.starts_at == end)
        assert sorted(b["company"] for b in new) == sorted(s["company"] for s in subs)
        assert {(b["ends_at"], b["seats"], b["allocated"]) for b in new} == {(term_end(end), 12, 3)}
        renewed = await Subscription.select(Subscription.term_end, Subscription.next_charge_at)
        assert {(s["term_end"], s["next_charge_at"]) for s in renewed} == {(term_end(end), None)}

        # Again the same day: nothing more.
        await pool.enqueue_job("billing_tick", _job_id="tick:c")
        await pool.enqueue_job("renew_chunk", _job_id="chunk:again")
        await two_workers(processor)
        assert await Invoice.count() == CUSTOMERS and await Charge.count() == CUSTOMERS
        assert len(processor.calls) == CUSTOMERS
        assert await LicenceBatch.count() == 2 * CUSTOMERS
    finally:
        await pool.aclose()
