"""Card payments: the test processor's answers by card number, and
charge_invoice asking the processor once per (invoice, attempt)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from portal import db
from portal.domain.access import load_actor
from portal.domain.billing import invoices, payments
from portal.domain.billing.invoices import Line
from portal.domain.billing.payments import CardDetails, ChargeResult, TestProcessor
from portal.domain.errors import ValidationFailed
from portal.domain.orders.decisions import InvalidTransition
from portal.tables import AuditEntry
from portal.tables.billing import Charge, Invoice
from tests.factories import T0


@pytest.fixture
def processor():
    fresh = TestProcessor()
    return fresh


async def issue(tree) -> dict:
    async with db.write_transaction():
        return await invoices.create_invoice(
            partner_id=tree.partner["id"],
            company_id=tree.direct["id"],
            kind="purchase",
            lines=(Line("pro", "Pro", 1, 600000), Line("standard_user", "Additional standard user", 20, 36000)),
            now=T0,
        )


def card(number: str, month: int = 4, year: int = 2030, cvc: str = "123") -> CardDetails:
    return CardDetails(number=number, exp_month=month, exp_year=year, cvc=cvc)


async def test_the_test_cards(processor):
    saved = await processor.save_card(card("4242 4242 4242 4242"))
    assert (saved.brand, saved.last4, saved.expires) == ("Visa", "4242", "2030-04")
    assert saved.token.startswith("tok_test_") and "4242424242424242" not in saved.token
    failing = await processor.save_card(card("4000-0000-0000-0341", month=11, year=2029))
    assert (failing.last4, failing.expires) == ("0341", "2029-11")
    assert failing.token != saved.token
    refusals = {
        "4000 0000 0000 0002": "Your card was declined.",
        "4242 4242 4242 4241": "That card number is not valid.",
        "4242x4242 4242 4242": "That card number is not valid.",
        "": "That card number is not valid.",
        "4242": "That card number is not valid.",
        "5555 5555 5555 4444": "Test mode accepts only the test cards.",
    }
    for number, message in refusals.items():
        with pytest.raises(ValidationFailed) as refused:
            await processor.save_card(card(number))
        assert refused.value.errors == {"card": message}, number
    with pytest.raises(ValidationFailed) as bad:
        await processor.save_card(card("4242424242424242", month=13, year=1999, cvc="12a"))
    assert set(bad.value.errors) == {"exp_month", "exp_year", "cvc"}
    with pytest.raises(ValidationFailed) as expired:
        await processor.save_card(card("4242424242424242", month=12, year=2025), now=T0)
    assert expired.value.errors == {"exp_year": "This card has expired."}
    assert (await processor.save_card(card("4242424242424242", month=1, year=2026), now=T0)).expires == "2026-01"
    assert "4242424242424242" not in repr(card("4242424242424242"))
    assert processor.test_mode is True


async def test_a_charge_pays_the_invoice_once(tree, processor):
    invoice = await issue(tree)
    token = (await processor.save_card(card("4242424242424242"))).token
    later = T0 + timedelta(minutes=1)
    result = await payments.charge_invoice(invoice["id"], token, attempt=1, now=later, processor=processor)
    assert result.ok and result.decline_reason is None and result.reference.startswith("ch_test_")
    row = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    assert (row["status"], row["payment_method"], row["payment_reference"], row["paid_at"]) == (
        "paid",
        "card",
        result.reference,
        later,
    )
    charges = await Charge.select()
    assert len(charges) == 1
    assert (
        charges[0]["status"],
        charges[0]["amount_cents"],
        charges[0]["currency"],
        charges[0]["idempotency_key"],
    ) == (
        "succeeded",
        1320000,
        "USD",
        f"{invoice['id']}:1",
    )
    # The same key again (a retried job): the recorded answer, no second call, no second row.
    again = await payments.charge_invoice(
        invoice["id"], token, attempt=1, now=later + timedelta(hours=1), processor=processor
    )
    assert again == ChargeResult(ok=True, reference=result.reference, decline_reason=None)
    assert processor.calls == [f"{invoice['id']}:1"]
    assert await Charge.count() == 1
    # A new attempt on a paid invoice is refused before the processor is asked.
    with pytest.raises(InvalidTransition):
        await payments.charge_invoice(invoice["id"], token, attempt=2, now=later, processor=processor)
    assert processor.calls == [f"{invoice['id']}:1"]
    details = [
        json.loads(r["detail"])
        for r in await AuditEntry.select().where(AuditEntry.action == "invoice.charged").order_by(AuditEntry.id)
    ]
    assert [(d["amount_cents"], d["currency"], d["attempt"]) for d in details] == [(1320000, "USD", 1)]


async def test_a_declined_charge_leaves_the_invoice_issued(tree, processor):
    invoice = await issue(tree)
    token = (await processor.save_card(card("4000 0000 0000 0341"))).token
    first = await payments.charge_invoice(invoice["id"], token, attempt=1, now=T0, processor=processor)
    assert first == ChargeResult(ok=False, reference=None, decline_reason="Your card was declined.")
    assert (await Invoice.select(Invoice.status).where(Invoice.id == invoice["id"]).first())["status"] == "issued"
    second = await payments.charge_invoice(
        invoice["id"], token, attempt=2, now=T0 + timedelta(days=2), processor=processor
    )
    assert second.ok is False
    rows = await Charge.select(Charge.attempt, Charge.status, Charge.decline_reason).order_by(Charge.attempt)
    assert rows == [
        {"attempt": 1, "status": "declined", "decline_reason": "Your card was declined."},
        {"attempt": 2, "status": "declined", "decline_reason": "Your card was declined."},
    ]
    # Attempt 1 again: answered from its row.
    assert (
        await payments.charge_invoice(invoice["id"], token, attempt=1, now=T0, processor=processor)
    ).decline_reason == ("Your card was declined.")
    assert len(processor.calls) == 2
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charge_declined") == 2


async def test_two_workers_charging_the_same_attempt_ask_the_processor_once(tree, processor):
    invoice = await issue(tree)
    token = (await processor.save_card(card("4242424242424242"))).token
    results = await asyncio.gather(
        *(payments.charge_invoice(invoice["id"], token, attempt=1, now=T0, processor=processor) for _ in range(6))
    )
    assert processor.calls == [f"{invoice['id']}:1"]
    assert await Charge.count() == 1
    assert sum(1 for r in results if r.ok) >= 1
    assert all(r.ok or r.pending for r in results)
    row = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    assert row["status"] == "paid"
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.paid") == 1


async def test_an_attempt_left_pending_by_a_dead_worker_is_taken_over_after_its_lease(tree, processor):
    invoice = await issue(tree)
    token = (await processor.save_card(card("4242424242424242"))).token
    await Charge.insert(
        Charge(
            invoice=invoice["id"],
            attempt=1,
            amount_cents=invoice["total_cents"],
            currency="USD",
            status="pending",
            attempted_at=T0,
            idempotency_key=f"{invoice['id']}:1",
        )
    )
    fresh = await payments.charge_invoice(
        invoice["id"], token, attempt=1, now=T0 + timedelta(minutes=1), processor=processor
    )
    assert fresh == ChargeResult(ok=False, reference=None, decline_reason=None, pending=True)
    assert processor.calls == []
    late = T0 + payments.PENDING_LEASE + timedelta(seconds=1)
    taken = await payments.charge_invoice(invoice["id"], token, attempt=1, now=late, processor=processor)
    assert taken.ok
    assert processor.calls == [f"{invoice['id']}:1"]
    row = await Charge.select().first()
    assert (row["status"], row["attempted_at"]) == ("succeeded", late)
    assert (await Invoice.select(Invoice.status).where(Invoice.id == invoice["id"]).first())["status"] == "paid"


class VoidingProcessor(TestProcessor):
    """Partner staff void the invoice while the processor is being asked, once the
    attempt's lease has run out (before, the void is refused: test_billing_charge_races)."""

    def __init__(self, actor) -> None:
        super().__init__()
        self.actor = actor

    async def charge(self, token, amount_cents, currency, idempotency_key):
        invoice_id = int(idempotency_key.split(":")[0])
        late = T0 + payments.PENDING_LEASE + timedelta(seconds=1)
        await invoices.void(self.actor, invoice_id, "Sent to the wrong company", late)
        return await super().charge(token, amount_cents, currency, idempotency_key)


async def test_money_taken_for_an_invoice_voided_meanwhile_is_recorded_for_a_refund(tree):
    invoice = await issue(tree)
    actor = await load_actor(tree.managers["partner"]["id"], None)
    voiding = VoidingProcessor(actor)
    token = (await voiding.save_card(card("4242424242424242"))).token
    result = await payments.charge_invoice(invoice["id"], token, attempt=1, now=T0, processor=voiding)
    assert result.ok
    assert (await Charge.select(Charge.status).first())["status"] == "succeeded"
    assert (await Invoice.select(Invoice.status).where(Invoice.id == invoice["id"]).first())["status"] == "void"
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charged_not_issued") == 1


async def test_the_test_processor_answers_a_key_alike(processor):
    token = (await processor.save_card(card("4242424242424242"))).token
    first = await processor.charge(token, 100, "USD", "9:1")
    assert first == await TestProcessor().charge(token, 100, "USD", "9:1")
    assert first.reference != (await processor.charge(token, 100, "USD", "9:2")).reference
    assert (await processor.charge("tok_live_x", 100, "USD", "9:3")).ok is False
