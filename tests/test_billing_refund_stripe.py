"""Refunding a card payment taken through Stripe (portal/stripe_processor.py's
`refund`), through the real `stripe` SDK against localstripe, on both engines: the
domain, then the invoice page's Refund with PAYMENT_PROCESSOR=stripe.

Not exercised against the fake (it does not do them): Stripe's idempotency keys (the
portal's refund rows ask once per key on their own: test_billing_refunds) and
Stripe's charge.refunded webhook (test_billing_refund_events signs and sends it)."""

from __future__ import annotations

import re

from portal.domain.billing import accounts, refunds, subscriptions
from portal.tables.billing import Charge, CreditNote, Refund
from tests.support import csrf_of, sign_in
from tests.test_billing_stripe import browser_sets_up
from tests.test_billing_stripe import processor as processor  # noqa: F401 (the app's fixture: Stripe)
from tests.test_billing_stripe import services as services  # noqa: F401 (PAYMENT_PROCESSOR=stripe)
from tests.test_billing_stripe import stripe_processor as stripe_processor_fixture
from tests.test_billing_subscriptions import ADDRESS, NOW, actors, pro

stripe_processor = stripe_processor_fixture


async def bought_through_stripe(tree, stripe_processor, localstripe) -> dict:
    customer, _ = await actors(tree)
    method = await browser_sets_up(stripe_processor, localstripe.url)
    bought = await subscriptions.buy(
        customer,
        tree.north["id"],
        pro(0),
        NOW,
        account=accounts.OnlineAccount(payment_method=method, **ADDRESS),
        processor=stripe_processor,
    )
    assert bought["charge"].ok
    return bought["invoice"]


async def test_a_refund_goes_back_to_the_card_through_stripe(tree, stripe_processor, localstripe):
    invoice = await bought_through_stripe(tree, stripe_processor, localstripe)
    _, seller = await actors(tree)
    charge = await Charge.select().where(Charge.invoice == invoice["id"]).first()
    part = await refunds.refund(seller, invoice["id"], 1234, "Goodwill", "s1", NOW, processor=stripe_processor)
    row = part["refund"]
    assert row["status"] == "succeeded" and row["processor_ref"].startswith("re_")
    at_stripe = stripe_processor.client.v1.refunds.retrieve(row["processor_ref"])
    assert (at_stripe.amount, at_stripe.payment_intent, at_stripe.status) == (
        1234,
        charge["processor_ref"],
        "succeeded",
    )
    assert at_stripe.metadata["refund_key"] == row["idempotency_key"]
    # The same confirmation again asks Stripe nothing more.
    again = await refunds.refund(seller, invoice["id"], 1234, "Goodwill", "s1", NOW, processor=stripe_processor)
    assert again["repeat"] and again["refund"]["id"] == row["id"]
    listed = stripe_processor.client.v1.refunds.list({"payment_intent": charge["processor_ref"]})
    assert [r.id for r in listed.data] == [row["processor_ref"]]
    rest = invoice["total_cents"] - 1234
    await refunds.refund(seller, invoice["id"], rest, "Cancelled", "s2", NOW, processor=stripe_processor)
    listed = stripe_processor.client.v1.refunds.list({"payment_intent": charge["processor_ref"]})
    assert sorted(r.amount for r in listed.data) == sorted([1234, rest])
    assert [n["label"] for n in await _labels()] == ["CN-000001", "CN-000002"]


async def _labels() -> list[dict]:
    rows = await CreditNote.select().order_by(CreditNote.number)
    return [{"label": f"CN-{r['number']:06d}"} for r in rows]


async def test_the_invoice_page_refunds_a_stripe_payment(client, tree, stripe_processor, localstripe):
    invoice = await bought_through_stripe(tree, stripe_processor, localstripe)
    await sign_in(client, tree.email("sub"))
    page = await client.get(f"/invoices/{invoice['id']}/refund")
    assert page.status_code == 200, page.text[:500]
    confirm = await client.post(
        f"/invoices/{invoice['id']}/refund/confirm",
        data={"amount": "10.00", "reason": "Goodwill", "_csrf_token": csrf_of(page.text)},
    )
    assert confirm.status_code == 200, confirm.text[:1000]
    assert "Refund $10.00 USD to the card ending 4242 and issue a credit note" in confirm.text
    key = re.search(r'name="key" value="([^"]+)"', confirm.text)
    assert key
    done = await client.post(
        f"/invoices/{invoice['id']}/refund",
        data={"amount": "10.00", "reason": "Goodwill", "key": key.group(1), "_csrf_token": csrf_of(confirm.text)},
    )
    assert done.status_code in (302, 303), done.text[:500]
    row = await Refund.select().first()
    assert row["status"] == "succeeded" and row["processor_ref"].startswith("re_")
    assert stripe_processor.client.v1.refunds.retrieve(row["processor_ref"]).amount == 1000
    shown = await client.get(f"/invoices/{invoice['id']}")
    assert "Refunded $10.00 USD to the card. Credit note CN-000001 issued." in shown.text.replace("&#39;", "'")
    assert "/credit-notes/" in shown.text
