"""A purchase that is never paid: cancelling a
pending subscription voids its purchase invoice and withdraws its order; voiding a
purchase invoice (without reissue) declines its order and ends the pending
subscription; an invoice whose subscription is not live cannot be paid."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain.billing import cancellation, changes, invoices, settlement, subscriptions
from portal.domain.billing.renewal import lapse, voiding
from portal.domain.errors import ValidationFailed
from portal.domain.orders import decisions
from portal.tables import LicenceBatch, LicenceOrder
from portal.tables.billing import Charge, Invoice, Subscription
from portal.web.billing import messages
from tests.support import PROCESSOR, post_form, sign_in
from tests.test_billing_subscriptions import DECLINING_CARD, GOOD_CARD, NOW, actors, pro, with_card
from tests.test_billing_web import ADDRESS, CARD, buy, flashes

NOT_LIVE = "This invoice's subscription has ended: it cannot be paid."


async def _row(table, row_id: int) -> dict:
    return await table.select().where(table.id == row_id).first()


async def test_cancelling_a_pending_online_subscription_voids_its_purchase_invoice(tree):
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"], DECLINING_CARD)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "online", 0), NOW, processor=PROCESSOR)
    cancelled = await cancellation.cancel(customer, bought["subscription"]["id"], NOW)
    assert cancelled["status"] == "ended" and cancelled["voided_invoices"] == ["INV-00001"]
    invoice = await _row(Invoice, bought["invoice"]["id"])
    assert (invoice["status"], invoice["void_reason"]) == ("void", "The subscription was cancelled before it was paid.")
    await with_card(customer, tree.north["id"], GOOD_CARD)
    with pytest.raises(ValidationFailed):
        await settlement.pay_invoice(customer, invoice["id"], NOW + timedelta(minutes=1), processor=PROCESSOR)
    assert await Charge.count().where(Charge.status == "succeeded") == 0 and await LicenceBatch.count() == 0


async def test_cancelling_a_pending_invoice_subscription_withdraws_its_order(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    order_id = bought["invoice"]["order"]
    await cancellation.request_cancellation(customer, bought["subscription"]["id"], NOW)
    await cancellation.confirm_cancellation(seller, bought["subscription"]["id"], NOW)
    assert (await _row(Invoice, bought["invoice"]["id"]))["status"] == "void"
    assert (await _row(LicenceOrder, order_id))["status"] == "cancelled"
    with pytest.raises(decisions.InvalidTransition):  # nothing left to assign for free
        await decisions.assign_order(seller, order_id, NOW)
    with pytest.raises(ValidationFailed):
        await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    assert await LicenceBatch.count() == 0


async def test_an_invoice_of_a_subscription_that_ended_cannot_be_paid(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    sub = (await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW))[
        "subscription"
    ]
    changed = await changes.change(
        customer, sub["id"], tier="pro", extra_users=5, read_only_users=0, now=NOW, processor=PROCESSOR
    )
    await cancellation.request_cancellation(customer, sub["id"], NOW)
    await cancellation.confirm_cancellation(seller, sub["id"], NOW)
    assert await lapse.lapse_unpaid(sub["term_end"]) == 1
    assert (await _row(Subscription, sub["id"]))["status"] == "ended"
    with pytest.raises(ValidationFailed) as refused:
        await settlement.record_payment(seller, changed["invoice"]["id"], method="check", reference="", now=NOW)
    assert refused.value.errors == {"status": NOT_LIVE}
    await with_card(customer, tree.north["id"], GOOD_CARD)
    with pytest.raises(ValidationFailed) as refused:
        await settlement.pay_invoice(customer, changed["invoice"]["id"], sub["term_end"], processor=PROCESSOR)
    assert refused.value.errors == {"status": NOT_LIVE}
    assert (await _row(Invoice, changed["invoice"]["id"]))["status"] == "issued"
    assert await Charge.count() == 0


async def test_voiding_a_purchase_invoice_declines_its_order_and_ends_the_pending_subscription(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    invoice = bought["invoice"]
    effect = messages.void_effect(await voiding.if_voided(invoice))
    assert effect == (
        "its order in Requested Orders is declined and the subscription, never paid, ends: "
        "North Customer can buy again."
    )
    await invoices.void(seller, invoice["id"], "customer never paid", NOW)
    order = await _row(LicenceOrder, invoice["order"])
    assert order["status"] == "declined"
    assert order["decline_reason"] == "Invoice INV-00001 was voided: customer never paid"
    with pytest.raises(decisions.InvalidTransition):
        await decisions.assign_order(seller, invoice["order"], NOW)
    sub = await _row(Subscription, bought["subscription"]["id"])
    assert (sub["status"], sub["auto_renew"], sub["cancelled_at"]) == ("ended", False, NOW)
    # The company may buy again.
    again = await subscriptions.buy(
        customer, tree.north["id"], pro(0, "invoice", 0), NOW + timedelta(minutes=1), processor=PROCESSOR
    )
    assert again["subscription"]["status"] == "pending"
    assert await LicenceBatch.count() == 0


async def test_void_and_reissue_of_a_purchase_invoice_keeps_its_order_and_subscription(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    new = await invoices.reissue(seller, bought["invoice"]["id"], NOW)
    assert new["order"] == bought["invoice"]["order"]
    assert (await _row(LicenceOrder, new["order"]))["status"] == "requested"
    assert (await _row(Subscription, bought["subscription"]["id"]))["status"] == "pending"
    paid = await settlement.record_payment(seller, new["id"], method="check", reference="", now=NOW)
    assert paid["batch"]["seats"] == 10 and paid["subscription"]["status"] == "active"


async def test_cancel_of_a_pending_subscription_says_its_invoice_is_void(client, tree):
    await sign_in(client, tree.email("north"))
    declining = {**CARD, "card_number": "4000 0000 0000 0341"}
    await buy(
        client,
        tree.north["id"],
        {"tier": "lite", "extra_users": "0", "read_only_users": "0", "method": "online"},
        {**declining, **ADDRESS},
    )
    sub = await Subscription.select().first()
    assert sub["status"] == "pending"
    page = f"/companies/{tree.north['id']}/billing/subscriptions"
    done = await post_form(client, page, f"/billing/subscriptions/{sub['id']}/cancel", {})
    assert (done.status_code, done.headers["location"]) == (302, page)
    said = flashes((await client.get(page)).text)
    assert said == ["Cancelled before it was paid: nothing was bought and invoice INV-00001 is void."]
