"""A refused purchase writes nothing: the card typed on
the quote page is saved only once the purchase is allowed, and saving it while buying
switches no other subscription to Pay Online."""

from __future__ import annotations

import pytest

from portal.domain.billing import accounts, cancellation, catalogue, payments, quotes, settlement, subscriptions
from portal.domain.errors import ValidationFailed
from portal.tables import AuditEntry
from portal.tables.billing import BillingAccount, Subscription
from tests.support import PROCESSOR, card_token, csrf_of, handed_card, sign_in
from tests.test_billing_subscriptions import ADDRESS, GOOD_CARD, NOW, actors, pro
from tests.test_billing_web import ADDRESS as WEB_ADDRESS
from tests.test_billing_web import quoted_fields


async def test_a_refused_purchase_saves_no_card_and_switches_nothing(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    await cancellation.request_cancellation(customer, bought["subscription"]["id"], NOW)
    new_account = accounts.OnlineAccount(payment_method=await card_token(GOOD_CARD), **ADDRESS)
    with pytest.raises(ValidationFailed) as refused:
        await subscriptions.buy(
            customer, tree.north["id"], pro(0, "online", 0), NOW, account=new_account, processor=PROCESSOR
        )
    assert set(refused.value.errors) == {"subscription"}
    row = await Subscription.select().where(Subscription.id == bought["subscription"]["id"]).first()
    assert (row["method"], row["auto_renew"], row["cancel_requested_at"]) == ("invoice", True, NOW)
    assert await BillingAccount.count() == 0
    assert await AuditEntry.count().where(AuditEntry.action.like("billing.%")) == 0


async def test_a_purchase_at_a_changed_price_saves_no_card(tree):
    customer, seller = await actors(tree)
    shown = await quotes.quote_purchase(customer, tree.north["id"], pro(0), NOW)
    await catalogue.save_item(seller, tree.sub["id"], "pro", price_cents=1_00, included_users=10, active=True, now=NOW)
    with pytest.raises(ValidationFailed):
        await subscriptions.buy(
            customer,
            tree.north["id"],
            pro(0),
            NOW,
            quoted=quotes.Quoted.of(shown.totals),
            account=accounts.OnlineAccount(payment_method=await card_token(GOOD_CARD), **ADDRESS),
            processor=PROCESSOR,
        )
    assert await BillingAccount.count() == 0


async def test_buying_with_a_new_card_saves_it_with_the_purchase(tree):
    customer, _ = await actors(tree)
    bought = await subscriptions.buy(
        customer,
        tree.north["id"],
        pro(0),
        NOW,
        account=accounts.OnlineAccount(payment_method=await card_token(GOOD_CARD), **ADDRESS),
        processor=PROCESSOR,
    )
    assert bought["charge"].ok and bought["subscription"]["status"] == "active"
    account = await BillingAccount.select().first()
    assert (account["card_last4"], account["billing_name"]) == ("4242", "North Customer Ltd")
    actions = [a["action"] for a in await AuditEntry.select(AuditEntry.action).order_by(AuditEntry.id)]
    assert actions.index("billing.online_account.create") < actions.index("subscription.buy")


async def test_a_bad_card_on_the_quote_page_buys_nothing_and_names_the_field(tree):
    customer, _ = await actors(tree)
    # What reaches the portal is the processor's id for a card; a card number in its place is no card.
    bad = accounts.OnlineAccount(payment_method="4242 4242 4242 4242", **ADDRESS)
    with pytest.raises(ValidationFailed) as refused:
        await subscriptions.buy(customer, tree.north["id"], pro(0), NOW, account=bad, processor=PROCESSOR)
    assert refused.value.errors == {"card": payments.NO_PAYMENT_METHOD}
    assert await Subscription.count() == 0 and await BillingAccount.count() == 0


async def test_the_quote_page_of_a_second_purchase_saves_no_card(client, tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    purchase = {"tier": "pro", "extra_users": "0", "read_only_users": "0", "method": "online"}
    quote = await client.get(f"{base}/buy/quote", params=purchase)
    form = {
        **purchase,
        **(await handed_card(client)),
        **WEB_ADDRESS,
        **quoted_fields(quote.text),
        "_csrf_token": csrf_of(quote.text),
    }
    refused = await client.post(f"{base}/buy", data=form)
    assert refused.status_code == 400 and "North Customer already has a subscription" in refused.text
    assert await BillingAccount.count() == 0
    assert (await Subscription.select(Subscription.method).first())["method"] == "invoice"
