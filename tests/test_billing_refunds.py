"""Refunds and credit notes (portal/domain/billing/refunds.py, credit_notes.py), on
the engine of the run: partner staff refund a paid invoice in whole or in part with
a reason, to the cent; each refund issues a credit note numbered per seller without
gaps; a card payment goes back through the processor, a payment recorded by hand is
owed by the seller; ten identical confirmations at once refund once; read-only staff
and customer managers cannot; money taken for an invoice voided meanwhile is
refunded in full without a credit note."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta

import pytest

from portal import db
from portal.domain.access import load_actor
from portal.domain.billing import credit_notes, invoices, payments, profiles, refunds, settlement, subscriptions
from portal.domain.billing.credit_notes import Credit
from portal.domain.billing.invoices import Line
from portal.domain.billing.payments import TestProcessor
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import AuditEntry, OutboxEmail
from portal.tables.billing import BillingProfile, Charge, CreditNote, CreditNoteLine, Invoice, Refund
from tests.factories import T0
from tests.support import PROCESSOR
from tests.test_billing_subscriptions import NOW, actors, bought_online, pro

TIMES = 10


class NetworkProcessor(TestProcessor):
    """The test processor, answering a refund after a round trip's wait."""

    async def refund(self, payment_reference, amount_cents, currency, idempotency_key):
        await asyncio.sleep(0.02)
        return await super().refund(payment_reference, amount_cents, currency, idempotency_key)


async def taxed(tree, rate_bp: int = 825) -> None:
    _, seller = await actors(tree)
    await profiles.save_profile(
        seller, tree.sub["id"], currency="USD", tax_rate_bp=rate_bp, assign_unpaid=False, now=NOW
    )


async def paid_by_card(tree) -> dict:
    await taxed(tree)
    bought = await bought_online(tree, extra=3)
    assert bought["invoice"]["status"] == "paid" and bought["invoice"]["payment_method"] == "card"
    return bought["invoice"]


async def paid_by_hand(tree) -> dict:
    customer, seller = await actors(tree)
    await taxed(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(2, method="invoice"), NOW, processor=PROCESSOR)
    result = await settlement.record_payment(
        seller, bought["invoice"]["id"], method="check", reference="CHK 77", now=NOW
    )
    return result["invoice"]


async def lines_of(note_id: int) -> list[dict]:
    return await CreditNoteLine.select().where(CreditNoteLine.credit_note == note_id).order_by(CreditNoteLine.position)


def test_a_part_refund_credits_tax_in_proportion_and_the_parts_add_up_to_the_invoice():
    invoice = {"total_cents": 10825, "tax_cents": 825, "subtotal_cents": 10000}
    lines = [
        {"code": "pro", "description": "Pro", "quantity": 1, "unit_cents": 6000, "amount_cents": 6000},
        {"code": "user", "description": "Users", "quantity": 4, "unit_cents": 1000, "amount_cents": 4000},
    ]
    cent = credit_notes.credit_for(invoice, lines, 0, 1)
    assert cent == Credit((Line("pro", "Pro", 1, 1),), 1, 0)
    half = credit_notes.credit_for(invoice, lines, 1, 5412)
    # Tax after 54.13 refunded: 5413 × 825 / 10825 = 412.54 → 413.
    assert half == Credit((Line("pro", "Pro", 1, 2999), Line("user", "Users", 1, 2000)), 4999, 413)
    rest = credit_notes.credit_for(invoice, lines, 5413, 5412)
    assert (rest.subtotal_cents, rest.tax_cents) == (5000, 412)
    assert cent.total_cents + half.total_cents + rest.total_cents == 10825
    assert cent.tax_cents + half.tax_cents + rest.tax_cents == 825
    # The whole invoice at once: its own lines, quantities and unit prices.
    whole = credit_notes.credit_for(invoice, lines, 0, 10825)
    assert whole == Credit((Line("pro", "Pro", 1, 6000), Line("user", "Users", 4, 1000)), 10000, 825)
    for bad in (0, -1, 10826):
        with pytest.raises(ValueError):
            credit_notes.credit_for(invoice, lines, 0, bad)


async def test_a_whole_card_refund_goes_back_to_the_card_with_a_credit_note_like_the_invoice(tree):
    invoice = await paid_by_card(tree)
    _, seller = await actors(tree)
    processor = TestProcessor()
    later = NOW + timedelta(days=3)
    result = await refunds.refund(
        seller,
        invoice["id"],
        invoice["total_cents"],
        "  Cancelled   in the first week ",
        "k1",
        later,
        processor=processor,
    )
    row, note = result["refund"], result["credit_note"]
    assert (row["status"], row["method"], row["amount_cents"], row["reason"]) == (
        "succeeded",
        "card",
        invoice["total_cents"],
        "Cancelled in the first week",
    )
    assert row["processor_ref"].startswith("re_test_") and processor.refunds == [row["idempotency_key"]]
    assert note["label"] == "CN-000001" and note["number"] == 1
    assert (note["subtotal_cents"], note["tax_cents"], note["total_cents"], note["tax_rate_bp"]) == (
        invoice["subtotal_cents"],
        invoice["tax_cents"],
        invoice["total_cents"],
        825,
    )
    invoice_lines = await credit_notes.invoice_lines(invoice["id"])
    assert [(r["description"], r["quantity"], r["unit_cents"]) for r in await lines_of(note["id"])] == [
        (r["description"], r["quantity"], r["unit_cents"]) for r in invoice_lines
    ]
    # Nothing is left: a second refund is refused with what to do.
    with pytest.raises(ValidationFailed) as nothing:
        await refunds.refund(seller, invoice["id"], 1, "again", "k2", later, processor=processor)
    assert nothing.value.errors == {"amount": refunds.NOTHING_LEFT}
    entry = await AuditEntry.select().where(AuditEntry.action == "invoice.refund").first()
    assert json.loads(entry["detail"])["credit_note"] == "CN-000001"
    assert await AuditEntry.count().where(AuditEntry.action == "credit_note.issue") == 1
    mails = await OutboxEmail.select().where(OutboxEmail.kind == "refund_issued")
    assert [m["to_email"] for m in mails] == [tree.email("north")]
    assert "CN-000001" in mails[0]["body"] and "back to the card" in mails[0]["body"]
    # What a printed credit note needs.
    printed = await credit_notes.get_credit_note(seller, note["id"])
    assert printed["invoice"]["label"] == invoices.format_invoice_number(invoice["number"])
    assert printed["seller"]["name"] == "Acme North" and printed["buyer"]["billing_name"] == "North Customer Ltd"
    assert printed["refund"]["method"] == "card" and printed["refund"]["card_last4"] == "4242"
    assert printed["reason"] == "Cancelled in the first week" and len(printed["lines"]) == len(invoice_lines)


async def test_part_refunds_to_the_cent_credit_the_invoice_exactly_once_all_are_made(tree):
    invoice = await paid_by_card(tree)
    _, seller = await actors(tree)
    total = invoice["total_cents"]
    parts = [1, 3333, total - 3334]
    for n, amount in enumerate(parts):
        await refunds.refund(seller, invoice["id"], amount, f"Part {n}", f"p{n}", NOW, processor=PROCESSOR)
    notes = await CreditNote.select().order_by(CreditNote.number)
    assert [n["number"] for n in notes] == [1, 2, 3]
    assert [n["total_cents"] for n in notes] == parts
    assert sum(n["tax_cents"] for n in notes) == invoice["tax_cents"]
    assert sum(n["subtotal_cents"] for n in notes) == invoice["subtotal_cents"]
    for note in notes:
        assert note["subtotal_cents"] + note["tax_cents"] == note["total_cents"]
        assert sum(line["amount_cents"] for line in await lines_of(note["id"])) == note["subtotal_cents"]
    assert (await refunds.refundable(seller, invoice["id"]))["left_cents"] == 0


async def test_amounts_reasons_and_invoices_a_refund_refuses(tree):
    invoice = await paid_by_card(tree)
    customer, seller = await actors(tree)
    for amount in (0, -5, invoice["total_cents"] + 1):
        with pytest.raises(ValidationFailed) as refused:
            await refunds.refund(seller, invoice["id"], amount, "Too much", f"a{amount}", NOW, processor=PROCESSOR)
        assert "amount" in refused.value.errors
    with pytest.raises(ValidationFailed) as no_reason:
        await refunds.refund(seller, invoice["id"], 100, "   ", "r", NOW, processor=PROCESSOR)
    assert no_reason.value.errors == {"reason": "Say why the money is refunded."}
    # An unpaid invoice.
    unpaid = await invoices.create_invoice(
        partner_id=tree.sub["id"],
        company_id=tree.north["id"],
        kind="addon",
        lines=(Line("onboarding", "Onboarding online course", 1, 200000),),
        now=NOW,
    )
    with pytest.raises(ValidationFailed) as not_paid:
        await refunds.refund(seller, unpaid["id"], 100, "Why", "u", NOW, processor=PROCESSOR)
    assert not_paid.value.errors == {"amount": refunds.NOT_PAID}
    assert await Refund.count() == 0 and await CreditNote.count() == 0


async def test_read_only_staff_customer_managers_and_other_partners_cannot_refund(tree):
    invoice = await paid_by_card(tree)
    customer, seller = await actors(tree)
    other = await load_actor(tree.managers["other"]["id"], None)
    assert other is not None
    with pytest.raises(PermissionDenied):
        await refunds.refund(
            dataclasses.replace(seller, read_only=True), invoice["id"], 100, "x", "1", NOW, processor=PROCESSOR
        )
    with pytest.raises(PermissionDenied):
        await refunds.refund(customer, invoice["id"], 100, "x", "2", NOW, processor=PROCESSOR)
    with pytest.raises(NotFound):
        await refunds.refund(other, invoice["id"], 100, "x", "3", NOW, processor=PROCESSOR)
    with pytest.raises(NotFound):
        await credit_notes.get_credit_note(other, 1)
    assert not refunds.may_refund(customer) and not refunds.may_refund(dataclasses.replace(seller, read_only=True))
    assert refunds.may_refund(seller)
    assert await Refund.count() == 0


async def test_a_payment_recorded_by_hand_is_refunded_by_the_seller_with_a_credit_note(tree):
    invoice = await paid_by_hand(tree)
    _, seller = await actors(tree)
    processor = TestProcessor()
    state = await refunds.refundable(seller, invoice["id"])
    assert (state["method"], state["left_cents"]) == ("by_hand", invoice["total_cents"])
    result = await refunds.refund(seller, invoice["id"], 12345, "Overcharged", "h", NOW, processor=processor)
    assert processor.refunds == []
    row = result["refund"]
    assert (row["method"], row["status"], row["charge"]) == ("by_hand", "succeeded", None)
    assert result["credit_note"]["total_cents"] == 12345
    mail = await OutboxEmail.select().where(OutboxEmail.kind == "refund_issued").first()
    assert "The seller returns it" in mail["body"]


async def test_ten_identical_refund_confirmations_at_once_refund_once(tree):
    invoice = await paid_by_card(tree)
    _, seller = await actors(tree)
    processor = NetworkProcessor()

    async def confirm(delay: float) -> dict:
        await asyncio.sleep(0.004 * delay)
        return await refunds.refund(seller, invoice["id"], 5000, "Goodwill", "same-key", NOW, processor=processor)

    results = await asyncio.gather(*(confirm(i) for i in range(TIMES)))
    assert len({r["refund"]["id"] for r in results}) == 1
    assert [r["repeat"] for r in results].count(False) == 1
    assert len(processor.refunds) == 1
    assert await Refund.count() == 1 and await CreditNote.count() == 1
    assert (await Refund.select().first())["status"] == "succeeded"
    assert await OutboxEmail.count().where(OutboxEmail.kind == "refund_issued") == 1
    # Sent again afterwards, it answers with the first one's refund and credit note.
    again = await refunds.refund(seller, invoice["id"], 5000, "Goodwill", "same-key", NOW, processor=processor)
    assert again["repeat"] and again["credit_note"]["label"] == "CN-000001" and len(processor.refunds) == 1


async def test_twenty_concurrent_credit_note_issuers_leave_no_gap_and_no_repeat(tree):
    """Real concurrent transactions, some rolling back after taking their number:
    the committed numbers are exactly 1..N, and the next carries on from there."""
    invoice = await paid_by_card(tree)
    lines = await credit_notes.invoice_lines(invoice["id"])

    async def issuer(n: int) -> int | None:
        try:
            async with db.write_transaction():
                note = await credit_notes.issue(
                    invoice=invoice,
                    credit=credit_notes.credit_for(invoice, lines, 0, 100 + n),
                    reason=f"n{n}",
                    actor=None,
                    now=T0,
                )
                await asyncio.sleep(0)  # the others run while this one holds its number
                if n % 5 == 0:
                    raise RuntimeError("the caller's later step failed")
                return note["number"]
        except RuntimeError:
            return None

    results = await asyncio.gather(*(issuer(n) for n in range(1, 21)))
    assert sorted(n for n in results if n is not None) == list(range(1, 17))
    rows = await CreditNote.select(CreditNote.number, CreditNote.total_cents).order_by(CreditNote.number)
    assert [r["number"] for r in rows] == list(range(1, 17))
    assert sorted(r["total_cents"] - 100 for r in rows) == [n for n in range(1, 21) if n % 5]
    profile = await BillingProfile.select().where(BillingProfile.company == tree.sub["id"]).first()
    assert profile["next_credit_note_number"] == 17 and profile["next_invoice_number"] == 2


async def test_twenty_concurrent_refunds_of_one_seller_number_their_credit_notes_without_gaps(tree):
    invoice = await paid_by_card(tree)
    _, seller = await actors(tree)
    processor = NetworkProcessor()
    results = await asyncio.gather(
        *(refunds.refund(seller, invoice["id"], 100, f"n{n}", f"k{n}", NOW, processor=processor) for n in range(20))
    )
    assert sorted(r["credit_note"]["number"] for r in results) == list(range(1, 21))
    assert (await refunds.refundable(seller, invoice["id"]))["refunded_cents"] == 2000


class VoidingProcessor(TestProcessor):
    """Partner staff void the invoice while the processor is being asked, once the
    attempt's lease has run out (before, the void is refused)."""

    def __init__(self, actor) -> None:
        super().__init__()
        self.actor = actor

    async def charge(self, token, amount_cents, currency, idempotency_key):
        invoice_id = int(idempotency_key.split(":")[0])
        late = NOW + payments.PENDING_LEASE + timedelta(seconds=1)
        await invoices.void(self.actor, invoice_id, "Sent to the wrong company", late)
        return await super().charge(token, amount_cents, currency, idempotency_key)


async def test_money_taken_for_an_invoice_voided_meanwhile_is_refunded_without_a_credit_note(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(1, method="invoice"), NOW, processor=PROCESSOR)
    invoice = bought["invoice"]
    voiding = VoidingProcessor(seller)
    token = (await voiding.save_card(payments.CardDetails("4242424242424242", 4, 2030, "123"))).token
    result = await payments.charge_invoice(invoice["id"], token, attempt=1, now=NOW, processor=voiding)
    assert result.ok
    assert (await Invoice.select(Invoice.status).where(Invoice.id == invoice["id"]).first())["status"] == "void"
    row = await Refund.select().first()
    charge = await Charge.select().first()
    assert (row["status"], row["amount_cents"], row["charge"], row["credit_note"], row["reason"]) == (
        "succeeded",
        invoice["total_cents"],
        charge["id"],
        None,
        refunds.VOID_REASON,
    )
    assert voiding.refunds == [f"void:{charge['idempotency_key']}"]
    assert await CreditNote.count() == 0
    # It left the partner's Failed charges list: the refund is its record now.
    from portal.domain.billing import subscription_list

    listed = await subscription_list.list_subscriptions(seller, {"failed_charges": "yes"}, 1)
    assert listed.items == []
    assert [r["reason"] for r in await refunds.of_invoice(invoice["id"])] == [refunds.VOID_REASON]
    # The billing tick finds nothing more to send.
    assert await refunds.send_waiting(NOW + timedelta(hours=1), processor=voiding) == 0


async def test_a_void_money_refund_the_processor_did_not_answer_is_sent_by_the_tick(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(1, method="invoice"), NOW, processor=PROCESSOR)
    invoice = bought["invoice"]

    class Away(VoidingProcessor):
        async def refund(self, *args, **kwargs):
            raise ConnectionError("processor unreachable")

    away = Away(seller)
    token = (await away.save_card(payments.CardDetails("4242424242424242", 4, 2030, "123"))).token
    assert (await payments.charge_invoice(invoice["id"], token, attempt=1, now=NOW, processor=away)).ok
    assert (await Refund.select(Refund.status).first())["status"] == "pending"
    from portal.domain.billing import subscription_list

    assert (await subscription_list.list_subscriptions(seller, {"failed_charges": "yes"}, 1)).items
    # Within the lease nobody asks again; after it, the tick does, with the same key.
    processor = TestProcessor()
    assert await refunds.send_waiting(NOW + timedelta(seconds=10), processor=processor) == 0
    assert await refunds.send_waiting(NOW + refunds.LEASE + timedelta(seconds=1), processor=processor) == 1
    row = await Refund.select().first()
    assert row["status"] == "succeeded" and processor.refunds == [row["idempotency_key"]]
    assert not (await subscription_list.list_subscriptions(seller, {"failed_charges": "yes"}, 1)).items
