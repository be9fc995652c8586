"""Invoices: gapless numbers per seller under concurrency, totals, paid once,
void and reissue, and another tenant's invoice answers NotFound."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from portal import db
from portal.domain.access import load_actor
from portal.domain.billing import invoices, profiles
from portal.domain.billing.invoices import Line
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.orders.decisions import InvalidTransition
from portal.tables import AuditEntry
from portal.tables.billing import BillingProfile, Invoice, InvoiceLine
from tests.factories import T0

# Signs the list cursors in these tests (the app derives its own from SECRET_KEY).
SECRET = b"test cursor key"

LINES = (
    Line("pro", "Pro licence, 12 months", 1, 600000),
    Line("standard_user", "Additional standard user, 12 months", 20, 36000),
    Line("onboarding", "Onboarding online course", 1, 200000),
)


async def actor_of(tree, key):
    actor = await load_actor(tree.managers[key]["id"], None)
    assert actor is not None
    return actor


async def issue(tree, customer="direct", *, now=T0, lines=LINES, **kwargs):
    seller = tree.partner if customer == "direct" else tree.sub
    async with db.write_transaction():
        return await invoices.create_invoice(
            partner_id=seller["id"],
            company_id=getattr(tree, customer)["id"],
            kind=kwargs.pop("kind", "purchase"),
            lines=lines,
            now=now,
            **kwargs,
        )


async def test_an_invoice_is_issued_numbered_with_its_lines_and_tax(tree):
    actor = await actor_of(tree, "partner")
    await profiles.save_profile(actor, tree.partner["id"], currency="USD", tax_rate_bp=825, assign_unpaid=False, now=T0)
    start = datetime(2026, 2, 1, tzinfo=UTC)
    invoice = await issue(tree, term_start=start, term_end=datetime(2027, 2, 1, tzinfo=UTC))
    assert invoice["number"] == 1
    assert invoice["status"] == "issued"
    assert invoice["company_path"] == tree.direct["path"]
    assert invoice["partner"] == tree.partner["id"]
    # 600000 + 20 × 36000 + 200000 = 1,520,000; 8.25 % = 125,400.
    assert (invoice["subtotal_cents"], invoice["tax_rate_bp"], invoice["tax_cents"], invoice["total_cents"]) == (
        1520000,
        825,
        125400,
        1645400,
    )
    assert invoice["currency"] == "USD"
    assert invoice["issued_at"] == T0
    assert invoice["due_at"] == T0 + timedelta(days=30)
    lines = await InvoiceLine.select().where(InvoiceLine.invoice == invoice["id"]).order_by(InvoiceLine.position)
    assert [(r["position"], r["code"], r["quantity"], r["unit_cents"], r["amount_cents"]) for r in lines] == [
        (1, "pro", 1, 600000, 600000),
        (2, "standard_user", 20, 36000, 720000),
        (3, "onboarding", 1, 200000, 200000),
    ]
    assert sum(r["amount_cents"] for r in lines) == invoice["subtotal_cents"]
    entry = await AuditEntry.select().where(AuditEntry.action == "invoice.issue").first()
    assert json.loads(entry["detail"]) == {
        "invoice": invoice["id"],
        "number": "INV-00001",
        "kind": "purchase",
        "total_cents": 1645400,
        "tax_cents": 125400,
        "currency": "USD",
    }
    # Numbers are per seller: the sub-partner's first invoice is its own number 1.
    assert (await issue(tree, "north"))["number"] == 1
    assert (await issue(tree))["number"] == 2


async def test_an_invoice_to_a_company_that_does_not_buy_from_the_seller_is_a_bug(tree):
    with pytest.raises(ValueError):
        async with db.write_transaction():
            await invoices.create_invoice(
                partner_id=tree.partner["id"], company_id=tree.north["id"], kind="purchase", lines=LINES, now=T0
            )
    with pytest.raises(ValueError):
        await issue(tree, lines=())
    with pytest.raises(ValueError):
        await issue(tree, lines=(Line("x", "Bad", 0, 100),))
    with pytest.raises(ValueError):
        await issue(tree, kind="gift")
    assert await Invoice.count() == 0


async def test_twenty_concurrent_issuers_leave_no_gap_and_no_repeat(tree):
    """Real concurrent transactions: each issues one invoice and some roll back
    after taking their number; the committed numbers are exactly 1..N."""

    async def issuer(n: int) -> int | None:
        try:
            async with db.write_transaction():
                invoice = await invoices.create_invoice(
                    partner_id=tree.partner["id"],
                    company_id=tree.direct["id"],
                    kind="purchase",
                    lines=(Line("onboarding", f"Course {n}", 1, 1000 + n),),
                    now=T0,
                )
                await asyncio.sleep(0)  # let the others run while this one holds its number
                if n % 5 == 0:
                    raise RuntimeError("the caller's later step failed")
                return invoice["number"]
        except RuntimeError:
            return None

    results = await asyncio.gather(*(issuer(n) for n in range(1, 21)))
    committed = sorted(number for number in results if number is not None)
    assert committed == list(range(1, 17))
    rows = await Invoice.select(Invoice.number, Invoice.total_cents).order_by(Invoice.number)
    assert [r["number"] for r in rows] == list(range(1, 17))
    assert sorted(r["total_cents"] - 1000 for r in rows) == [n for n in range(1, 21) if n % 5]
    profile = await BillingProfile.select().where(BillingProfile.company == tree.partner["id"]).first()
    assert profile["next_invoice_number"] == 17
    # The next issue carries on from there.
    assert (await issue(tree))["number"] == 17


async def test_a_taken_idempotency_key_returns_the_invoice_and_writes_nothing(tree):
    first = await issue(tree, kind="renewal", idempotency_key="renewal:7:2027-01-15T09:00:00+00:00")
    again = await issue(tree, kind="renewal", idempotency_key="renewal:7:2027-01-15T09:00:00+00:00")
    assert again["id"] == first["id"]
    assert again["number"] == 1
    racing = await asyncio.gather(*(issue(tree, kind="renewal", idempotency_key="renewal:8:x") for _ in range(8)))
    assert len({row["id"] for row in racing}) == 1
    assert await Invoice.count() == 2
    assert await InvoiceLine.count() == 2 * len(LINES)
    assert (await profiles.profile(tree.partner["id"]))["next_invoice_number"] == 3


async def test_paid_once(tree):
    invoice = await issue(tree)
    staff = tree.managers["partner"]["id"]
    paid = await invoices.mark_paid(
        invoice["id"], method="bank_transfer", reference=" WIRE  4411 ", now=T0 + timedelta(days=3), recorded_by=staff
    )
    assert (paid["status"], paid["payment_method"], paid["payment_reference"]) == ("paid", "bank_transfer", "WIRE 4411")
    row = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    assert (row["status"], row["paid_at"], row["recorded_by"]) == ("paid", T0 + timedelta(days=3), staff)
    with pytest.raises(InvalidTransition) as twice:
        await invoices.mark_paid(invoice["id"], method="check", reference="", now=T0, recorded_by=staff)
    assert twice.value.errors == {"status": "This invoice is already paid; it cannot be paid."}
    row = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    assert (row["payment_method"], row["paid_at"]) == ("bank_transfer", T0 + timedelta(days=3))
    entries = await AuditEntry.select().where(AuditEntry.action == "invoice.paid")
    assert len(entries) == 1
    assert json.loads(entries[0]["detail"])["total_cents"] == invoice["total_cents"]
    other = await issue(tree)
    with pytest.raises(ValidationFailed) as bad:
        await invoices.mark_paid(other["id"], method="bitcoin", reference="", now=T0, recorded_by=staff)
    assert bad.value.errors == {"method": "Choose how it was paid."}
    with pytest.raises(NotFound):
        await invoices.mark_paid(999_999, method="check", reference="", now=T0, recorded_by=staff)


async def test_two_people_recording_one_payment_record_it_once(tree):
    invoice = await issue(tree)

    async def record(method: str) -> str:
        try:
            async with db.write_transaction():
                await invoices.mark_paid(invoice["id"], method=method, reference="", now=T0, recorded_by=None)
            return method
        except InvalidTransition:
            return "refused"

    results = await asyncio.gather(record("check"), record("money_order"))
    assert sorted(results).count("refused") == 1
    row = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    assert row["payment_method"] in results


async def test_void_and_reissue(tree):
    actor = await actor_of(tree, "partner")
    old = await issue(tree, kind="renewal", idempotency_key="renewal:1:2027")
    with pytest.raises(ValidationFailed) as no_reason:
        await invoices.void(actor, old["id"], "  ", T0)
    assert no_reason.value.errors == {"reason": "Say why the invoice is void."}
    await profiles.save_profile(
        actor, tree.partner["id"], currency="USD", tax_rate_bp=1000, assign_unpaid=False, now=T0
    )
    later = T0 + timedelta(days=2)
    new = await invoices.reissue(actor, old["id"], later)
    assert new["number"] == 2
    assert new["replaces"] == old["id"]
    assert new["status"] == "issued"
    assert new["idempotency_key"] == "renewal:1:2027"
    assert (new["subtotal_cents"], new["tax_cents"]) == (old["subtotal_cents"], 152000)
    voided = await Invoice.select().where(Invoice.id == old["id"]).first()
    assert (voided["status"], voided["voided_at"], voided["void_reason"]) == ("void", later, "Replaced by INV-00002.")
    assert voided["idempotency_key"] is None
    # A retried renewal finds the invoice to pay, not the void one.
    assert (await issue(tree, kind="renewal", idempotency_key="renewal:1:2027"))["id"] == new["id"]
    new_lines = await InvoiceLine.select().where(InvoiceLine.invoice == new["id"]).order_by(InvoiceLine.position)
    assert [(r["code"], r["quantity"], r["unit_cents"]) for r in new_lines] == [
        (line.code, line.quantity, line.unit_cents) for line in LINES
    ]
    shown = await invoices.get_invoice(actor, old["id"])
    assert shown["replaced_by"] == {"id": new["id"], "label": "INV-00002"}
    assert (await invoices.get_invoice(actor, new["id"]))["replaces_label"] == "INV-00001"
    # Never edited once void: not paid, not voided again, not reissued again.
    with pytest.raises(InvalidTransition):
        await invoices.mark_paid(old["id"], method="check", reference="", now=later, recorded_by=None)
    with pytest.raises(InvalidTransition):
        await invoices.void(actor, old["id"], "again", later)
    with pytest.raises(InvalidTransition):
        await invoices.reissue(actor, old["id"], later)
    # A paid invoice is not voided.
    await invoices.mark_paid(new["id"], method="check", reference="", now=later, recorded_by=None)
    with pytest.raises(InvalidTransition):
        await invoices.void(actor, new["id"], "mistake", later)
    voided_once = await invoices.void(actor, (await issue(tree))["id"], "Wrong customer", later)
    assert voided_once["status"] == "void"
    actions = [r["action"] for r in await AuditEntry.select(AuditEntry.action).order_by(AuditEntry.id)]
    assert actions.count("invoice.void") == 2
    assert await Invoice.count() == 3


async def test_only_the_sellers_staff_void(tree):
    invoice = await issue(tree)
    with pytest.raises(PermissionDenied):
        await invoices.void(await actor_of(tree, "direct"), invoice["id"], "I do not want to pay", T0)
    with pytest.raises(NotFound):
        await invoices.void(await actor_of(tree, "other"), invoice["id"], "x", T0)
    with pytest.raises(NotFound):
        await invoices.reissue(await actor_of(tree, "sub"), invoice["id"], T0)  # the partner's, above the sub
    with pytest.raises(PermissionDenied):
        await invoices.void(replace(await actor_of(tree, "partner"), read_only=True), invoice["id"], "x", T0)
    assert (await Invoice.select(Invoice.status).first())["status"] == "issued"


async def test_get_invoice_inside_the_wing_only(tree):
    invoice = await issue(tree)
    for key in ("partner", "direct"):
        shown = await invoices.get_invoice(await actor_of(tree, key), invoice["id"])
        assert shown["label"] == "INV-00001"
        assert shown["seller"] == {"id": tree.partner["id"], "name": "Acme MSP"}
        assert shown["buyer"]["name"] == "Direct Customer"
        assert [line["code"] for line in shown["lines"]] == ["pro", "standard_user", "onboarding"]
        assert shown["replaces"] is None and shown["replaced_by"] is None
    for key in ("other", "other_customer", "north", "sub"):
        with pytest.raises(NotFound):
            await invoices.get_invoice(await actor_of(tree, key), invoice["id"])
    with pytest.raises(NotFound):
        await invoices.get_invoice(await actor_of(tree, "partner"), 999_999)


async def test_list_filters_and_export(tree):
    partner = await actor_of(tree, "partner")
    a = await issue(tree, now=datetime(2026, 3, 1, 12, tzinfo=UTC))
    b = await issue(tree, "north", kind="renewal", now=datetime(2026, 3, 2, 12, tzinfo=UTC))
    c = await issue(tree, kind="change", now=datetime(2026, 3, 3, 12, tzinfo=UTC))
    await invoices.mark_paid(a["id"], method="check", reference="", now=T0, recorded_by=None)

    async def ids(actor, **values):
        page = await invoices.list_invoices(actor, invoices.INVOICE_FILTERS.values(**values), None, SECRET)
        assert page.total == len(page.items)
        return [row["id"] for row in page.items]

    assert await ids(partner) == [c["id"], b["id"], a["id"]]
    assert await ids(partner, status="paid") == [a["id"]]
    assert await ids(partner, customer=tree.north["id"]) == [b["id"]]
    assert await ids(partner, kind="change") == [c["id"]]
    assert await ids(partner, issued_from=date(2026, 3, 2)) == [c["id"], b["id"]]
    assert await ids(partner, issued_to=date(2026, 3, 2)) == [b["id"], a["id"]]
    assert await ids(partner, issued_from=date(2026, 3, 2), issued_to=date(2026, 3, 2)) == [b["id"]]
    assert await ids(await actor_of(tree, "sub")) == [b["id"]]
    assert await ids(await actor_of(tree, "direct")) == [c["id"], a["id"]]
    assert await ids(await actor_of(tree, "other")) == []
    # Query-string values are read leniently, as elsewhere.
    assert invoices.INVOICE_FILTERS.parse({"status": "stolen", "kind": "renewal", "customer": "x"}) == {
        "kind": "renewal"
    }
    page = await invoices.list_invoices(partner, {}, None, SECRET)
    assert [row["label"] for row in page.items] == ["INV-00002", "INV-00001", "INV-00001"]
    assert {row["seller_name"] for row in page.items} == {"Acme MSP", "Acme North"}
    chunks = [chunk async for chunk in invoices.iter_invoices(partner, {}, chunk=2)]
    assert [[row["id"] for row in chunk] for chunk in chunks] == [[c["id"], b["id"]], [a["id"]]]
    choices = await invoices.filter_choices(partner, ["customer", "kind"])
    assert [row["name"] for row in choices["customer"]] == ["Direct Customer", "North Customer"]
    assert [row["id"] for row in choices["kind"]] == ["purchase", "renewal", "change", "addon"]
