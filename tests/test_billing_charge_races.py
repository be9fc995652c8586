"""At most one open charge per invoice: two "Pay Online"
at once, or the customer paying while the renewal job charges, ask the processor once;
the job and "Pay Online" number an invoice's attempts alike; an invoice being charged
cannot be voided; money taken for a void invoice shows under Failed charges."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from portal.domain.billing import accounts, invoices, payments, settlement, subscription_list, subscriptions
from portal.domain.billing.payments import TestProcessor
from portal.domain.billing.renewal import invoice_subscriptions, online
from portal.domain.errors import ValidationFailed
from portal.tables import AuditEntry
from portal.tables.billing import Charge, Invoice, Refund, Subscription
from tests.support import PROCESSOR, card_token
from tests.test_billing_subscriptions import DECLINING_CARD, GOOD_CARD, NOW, actors, pro, with_card

IN_PROGRESS = "A payment of this invoice is already in progress."


class SlowProcessor(TestProcessor):
    """Once `held`, holds its next answer until told, so that a second request comes
    while the first is asking; any other it answers at once."""

    def __init__(self) -> None:
        super().__init__()
        self.held = False
        self.asking = asyncio.Event()
        self.answer = asyncio.Event()

    async def charge(self, token, amount_cents, currency, idempotency_key):
        if self.held and not self.asking.is_set():
            self.asking.set()
            await self.answer.wait()
        return await super().charge(token, amount_cents, currency, idempotency_key)


@pytest.fixture
def slow():
    new = SlowProcessor()
    yield new
    new.answer.set()  # a test that failed midway leaves no request waiting


async def _declined_purchase(tree, processor: TestProcessor = PROCESSOR) -> dict:
    """North Customer's online purchase whose first charge was declined; a good card saved since."""
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"], DECLINING_CARD)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "online", 0), NOW, processor=processor)
    assert bought["charge"].ok is False
    await accounts.save_card(customer, tree.north["id"], await card_token(GOOD_CARD), NOW, processor=PROCESSOR)
    return bought


async def test_two_pay_online_at_once_charge_the_card_once(tree, slow):
    customer, _ = await actors(tree)
    bought = await _declined_purchase(tree, slow)
    invoice_id = bought["invoice"]["id"]
    slow.held = True
    first = asyncio.create_task(settlement.pay_invoice(customer, invoice_id, NOW, processor=slow))
    await slow.asking.wait()
    with pytest.raises(ValidationFailed) as refused:
        await settlement.pay_invoice(customer, invoice_id, NOW, processor=slow)
    assert refused.value.errors == {"payment": IN_PROGRESS}
    slow.answer.set()
    paid = await first
    assert paid["charge"].ok and paid["invoice"]["status"] == "paid"
    assert slow.calls == [f"{invoice_id}:1", f"{invoice_id}:2"]
    rows = await Charge.select(Charge.attempt, Charge.status).order_by(Charge.attempt)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "declined"), (2, "succeeded")]


async def test_an_invoice_being_charged_cannot_be_voided_or_reissued(tree, slow):
    customer, seller = await actors(tree)
    bought = await _declined_purchase(tree, slow)
    invoice_id = bought["invoice"]["id"]
    slow.held = True
    paying = asyncio.create_task(settlement.pay_invoice(customer, invoice_id, NOW, processor=slow))
    await slow.asking.wait()
    for attempt in (invoices.void(seller, invoice_id, "wrong company", NOW), invoices.reissue(seller, invoice_id, NOW)):
        with pytest.raises(ValidationFailed) as refused:
            await attempt
        assert refused.value.errors == {
            "status": "A payment of this invoice is in progress: try again in a few minutes."
        }
    slow.answer.set()
    assert (await paying)["charge"].ok
    assert (await Invoice.select(Invoice.status).where(Invoice.id == invoice_id).first())["status"] == "paid"


async def test_the_renewal_job_and_pay_online_number_an_invoices_attempts_alike(tree):
    """A renewal invoice asked for early and paid online with a card that was declined:
    the job's try is the next attempt, asked of the processor, not the customer's
    declined one answered again."""
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"], GOOD_CARD)
    sub = (await subscriptions.buy(customer, tree.north["id"], pro(0, "online", 0), NOW, processor=PROCESSOR))[
        "subscription"
    ]
    renewal = await invoice_subscriptions.request_invoice(customer, sub["id"], sub["term_end"] - timedelta(days=5))
    await accounts.save_card(customer, tree.north["id"], await card_token(DECLINING_CARD), NOW, processor=PROCESSOR)
    declined = await settlement.pay_invoice(
        customer, renewal["id"], sub["term_end"] - timedelta(days=4), processor=PROCESSOR
    )
    assert declined["charge"].ok is False
    await accounts.save_card(customer, tree.north["id"], await card_token(GOOD_CARD), NOW, processor=PROCESSOR)
    counts = await online.renew_due(sub["term_end"] - timedelta(hours=12), processor=PROCESSOR)
    assert counts["renewed"] == 1
    rows = (
        await Charge.select(Charge.attempt, Charge.status)
        .where(Charge.invoice == renewal["id"])
        .order_by(Charge.attempt)
    )
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "declined"), (2, "succeeded")]


async def test_pay_online_while_the_job_charges_the_renewal_is_refused(tree):
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"], GOOD_CARD)
    sub = (await subscriptions.buy(customer, tree.north["id"], pro(0, "online", 0), NOW, processor=PROCESSOR))[
        "subscription"
    ]
    renewal = await invoice_subscriptions.request_invoice(customer, sub["id"], sub["term_end"] - timedelta(days=5))
    at = sub["term_end"] - timedelta(hours=12)
    # The job's claim writes the attempt's charge row before asking (here it never gets to ask).
    await Charge.insert(
        Charge(
            invoice=renewal["id"],
            attempt=1,
            amount_cents=renewal["total_cents"],
            currency="USD",
            status="pending",
            attempted_at=at,
            idempotency_key=payments.charge_key(renewal["id"], 1),
        )
    )
    with pytest.raises(ValidationFailed) as refused:
        await settlement.pay_invoice(customer, renewal["id"], at + timedelta(minutes=1), processor=PROCESSOR)
    assert refused.value.errors == {"payment": IN_PROGRESS}
    # The job's next run finds the attempt still open and leaves it to whoever is asking.
    counts = await online.renew_due(at + timedelta(minutes=1), processor=PROCESSOR)
    assert (counts["claimed"], counts["pending"], counts["renewed"]) == (1, 1, 0)
    assert await Charge.count().where(Charge.invoice == renewal["id"]) == 1


class VoidingProcessor(TestProcessor):
    """A processor that answers after the charge's lease: partner staff voided the invoice meanwhile."""

    def __init__(self, actor, asked_at=NOW) -> None:
        super().__init__()
        self.actor = actor
        self.asked_at = asked_at

    async def charge(self, token, amount_cents, currency, idempotency_key):
        invoice_id = int(idempotency_key.split(":")[0])
        late = self.asked_at + payments.PENDING_LEASE + timedelta(minutes=1)
        await invoices.void(self.actor, invoice_id, "Sent to the wrong company", late)
        return await super().charge(token, amount_cents, currency, idempotency_key)


async def test_money_taken_for_a_void_invoice_is_refunded_and_leaves_failed_charges(tree):
    customer, seller = await actors(tree)
    bought = await _declined_purchase(tree)
    voiding = VoidingProcessor(seller)
    paid = await settlement.pay_invoice(customer, bought["invoice"]["id"], NOW, processor=voiding)
    assert paid["charge"].ok and paid["invoice"]["status"] == "void" and paid["batch"] is None
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charged_not_issued") == 1
    # Refunded in full at once, without a credit note: the refund is the record now.
    refund = await Refund.select().first()
    assert (refund["status"], refund["amount_cents"], refund["credit_note"]) == (
        "succeeded",
        bought["invoice"]["total_cents"],
        None,
    )
    assert voiding.refunds == [refund["idempotency_key"]]
    listed = await subscription_list.list_subscriptions(seller, {"failed_charges": "yes"}, 1)
    assert listed.items == []
    # The purchase's invoice voided: the purchase ended with it (test_billing_unpaid_purchase).
    assert (await Subscription.select(Subscription.status).first())["status"] == "ended"


async def test_money_the_renewal_job_took_for_a_void_invoice_renews_nothing_and_is_refunded(tree):
    customer, seller = await actors(tree)
    await with_card(customer, tree.north["id"], GOOD_CARD)
    sub = (await subscriptions.buy(customer, tree.north["id"], pro(0, "online", 0), NOW, processor=PROCESSOR))[
        "subscription"
    ]
    due = sub["term_end"] - timedelta(hours=12)
    voiding = VoidingProcessor(seller, asked_at=due)
    counts = await online.renew_due(due, processor=voiding)
    assert (counts["claimed"], counts["renewed"], counts["pending"]) == (1, 0, 1)
    renewal = await Invoice.select().where(Invoice.kind == "renewal").first()
    assert renewal["status"] == "void"
    charge = await Charge.select().where(Charge.invoice == renewal["id"]).first()
    assert (charge["status"], charge["processor_ref"] is not None) == ("succeeded", True)
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charged_not_issued") == 1
    row = await Subscription.select().where(Subscription.id == sub["id"]).first()
    assert (row["term_end"], row["batch"], row["status"]) == (sub["term_end"], sub["batch"], "active")
    refund = await Refund.select().first()
    assert (refund["status"], refund["charge"], refund["credit_note"]) == ("succeeded", charge["id"], None)
    assert voiding.refunds == [refund["idempotency_key"]]
    listed = await subscription_list.list_subscriptions(seller, {"failed_charges": "yes"}, 1)
    assert listed.items == []
