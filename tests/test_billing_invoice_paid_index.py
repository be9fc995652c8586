"""The billing tick's scan of recent payments (settlement.provision_missed) reads
the partial index invoice_paid (migration portal_0006), not the whole invoice
table: two years of invoices, mostly paid, and the scan wants a week of them.
Each engine's own plan: EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite."""

from __future__ import annotations

from datetime import timedelta

from portal import db
from portal.domain.billing import settlement
from portal.tables.billing import Invoice, Subscription
from tests.factories import T0

INVOICES = 5_000


async def _two_years_of_invoices(tree) -> None:
    """One invoice an hour going back from T0, each of a subscription; nine in ten paid,
    the rest issued or void."""
    (subscription,) = await Subscription.insert(
        Subscription(
            company=tree.north["id"],
            company_path=tree.north["path"],
            partner=tree.partner["id"],
            tier="pro",
            method="online",
        )
    )
    rows = []
    for n in range(INVOICES):
        at = T0 - timedelta(hours=n)
        status = "paid" if n % 10 else ("issued" if n % 20 else "void")
        rows.append(
            Invoice(
                partner=tree.partner["id"],
                company=tree.north["id"],
                company_path=tree.north["path"],
                subscription=subscription["id"],
                status=status,
                kind="purchase",
                created_at=at,
                issued_at=at,
                paid_at=at if status == "paid" else None,
            )
        )
    await db.insert_many(Invoice, rows)


async def _plan() -> str:
    args = (T0 - settlement.MISSED_WITHIN, T0 - settlement.MISSED_AFTER)
    if db.is_postgres():
        await Invoice.raw("ANALYZE invoice")
        rows = await Invoice.raw(f"EXPLAIN {settlement.MISSED_SQL}", *args)
        return "\n".join(r["QUERY PLAN"] for r in rows)
    rows = await Invoice.raw(f"EXPLAIN QUERY PLAN {settlement.MISSED_SQL}", *args)
    return "\n".join(r["detail"] for r in rows)


async def test_the_scan_of_recent_payments_reads_the_paid_invoices_index(tree):
    await _two_years_of_invoices(tree)
    plan = await _plan()
    assert "invoice_paid" in plan, plan
    if db.is_postgres():
        assert "Seq Scan on invoice" not in plan, plan
    else:
        assert "SCAN i\n" not in plan + "\n", plan


async def test_the_index_holds_paid_invoices_by_payment_date_only():
    if db.is_postgres():
        (row,) = await Invoice.raw("SELECT indexdef FROM pg_indexes WHERE indexname = 'invoice_paid'")
        assert row["indexdef"] == (
            "CREATE INDEX invoice_paid ON public.invoice USING btree (paid_at) WHERE ((status)::text = 'paid'::text)"
        )
    else:
        (row,) = await Invoice.raw("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'invoice_paid'")
        assert row["sql"] == 'CREATE INDEX invoice_paid ON "invoice" ("paid_at") WHERE status = \'paid\''
