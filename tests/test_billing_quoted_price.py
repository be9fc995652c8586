"""The price charged is the price shown: the quote page's
form carries the quoted total, currency and tax rate; buying or changing compares them
with the price now and, on a difference, shows the new price instead of charging."""

from __future__ import annotations

import pytest

from portal.domain.access import load_actor
from portal.domain.billing import catalogue, changes, profiles, quotes, subscriptions
from portal.domain.errors import ValidationFailed
from portal.tables import LicenceBatch
from portal.tables.billing import Charge, Invoice, Subscription
from tests.support import PROCESSOR, csrf_of, handed_card, sign_in
from tests.test_billing_subscriptions import NOW, actors, bought_online, pro, with_card
from tests.test_billing_web import ADDRESS, PRO_20, buy_pro_online, flashes, quoted_fields


async def test_buying_at_a_price_that_changed_since_the_quote_buys_nothing(tree):
    customer, seller = await actors(tree)
    await with_card(customer, tree.north["id"])
    shown = await quotes.quote_purchase(customer, tree.north["id"], pro(0), NOW)
    await catalogue.save_item(
        seller, tree.sub["id"], "pro", price_cents=9_000_00, included_users=10, active=True, now=NOW
    )
    with pytest.raises(ValidationFailed) as refused:
        await subscriptions.buy(
            customer, tree.north["id"], pro(0), NOW, quoted=quotes.Quoted.of(shown.totals), processor=PROCESSOR
        )
    # Pro $9,000 + 2 read-only users × $60 now; $6,120 when shown.
    assert refused.value.errors == {
        "price": "The price changed since you saw it: $9,120.00 USD now, $6,120.00 USD before. "
        "Check the new price below and confirm again."
    }
    assert (await Subscription.count(), await Invoice.count(), await Charge.count()) == (0, 0, 0)
    now = await quotes.quote_purchase(customer, tree.north["id"], pro(0), NOW)
    bought = await subscriptions.buy(
        customer, tree.north["id"], pro(0), NOW, quoted=quotes.Quoted.of(now.totals), processor=PROCESSOR
    )
    assert bought["invoice"]["total_cents"] == 9_120_00 and bought["charge"].ok


async def test_a_tax_rate_changed_since_the_quote_is_a_changed_price(tree):
    customer, seller = await actors(tree)
    await with_card(customer, tree.north["id"])
    shown = await quotes.quote_purchase(customer, tree.north["id"], pro(0, read_only=0), NOW)
    await profiles.save_profile(seller, tree.sub["id"], currency="USD", tax_rate_bp=2000, assign_unpaid=False, now=NOW)
    with pytest.raises(ValidationFailed) as refused:
        await subscriptions.buy(
            customer,
            tree.north["id"],
            pro(0, read_only=0),
            NOW,
            quoted=quotes.Quoted.of(shown.totals),
            processor=PROCESSOR,
        )
    assert refused.value.errors["price"].startswith("The price changed since you saw it: $7,200.00 USD now")


async def test_a_change_at_a_price_that_changed_since_the_quote_changes_nothing(tree):
    customer, seller = await actors(tree)
    sub = (await bought_online(tree))["subscription"]
    at = sub["term_start"]
    shown = await quotes.quote_change(customer, sub["id"], tier="pro", extra_users=30, read_only_users=2, now=at)
    await catalogue.save_item(
        seller, tree.sub["id"], "standard_user", price_cents=40_00, included_users=None, active=True, now=at
    )
    with pytest.raises(ValidationFailed) as refused:
        await changes.change(
            customer,
            sub["id"],
            tier="pro",
            extra_users=30,
            read_only_users=2,
            now=at,
            quoted=quotes.Quoted.of(shown.totals),
            processor=PROCESSOR,
        )
    assert refused.value.errors == {
        "price": "The price changed since you saw it: $4,800.00 USD now, $3,600.00 USD before. "
        "Check the new price below and confirm again."
    }
    assert await Invoice.count() == 1 and await LicenceBatch.count() == 1
    row = await Subscription.select().where(Subscription.id == sub["id"]).first()
    assert row["extra_users"] == 20


async def test_the_quote_page_carries_its_price_and_a_changed_price_is_shown_again(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    quote = await client.get(f"{base}/buy/quote", params=PRO_20)
    fields = quoted_fields(quote.text)
    key = fields.pop("quoted_key")
    assert fields == {"quoted_total_cents": "1320000", "quoted_currency": "USD", "quoted_tax_rate_bp": "0"}
    assert (
        len(key) >= 24
        and key != quoted_fields((await client.get(f"{base}/buy/quote", params=PRO_20)).text)["quoted_key"]
    )
    seller = await load_actor(tree.managers["sub"]["id"], None)
    await catalogue.save_item(
        seller, tree.sub["id"], "pro", price_cents=7_000_00, included_users=10, active=True, now=NOW
    )
    form = {**PRO_20, **(await handed_card(client)), **ADDRESS, **fields, "_csrf_token": csrf_of(quote.text)}
    changed = await client.post(f"{base}/buy", data=form)
    assert changed.status_code == 400
    assert (
        "The price changed since you saw it: $14,200.00 USD now, $13,200.00 USD before. "
        "Check the new price below and confirm again." in changed.text
    )
    assert '<td class="right money" data-testid="total">$14,200.00 USD</td>' in changed.text
    assert await Subscription.count() == 0 and await Invoice.count() == 0
    again = {**form, **quoted_fields(changed.text), "_csrf_token": csrf_of(changed.text)}
    bought = await client.post(f"{base}/buy", data=again)
    assert bought.status_code == 302
    assert flashes((await client.get(bought.headers["location"])).text)[0].startswith(
        "Paid $14,200.00 USD by card (invoice INV-00001)."
    )


async def test_a_confirm_without_the_quoted_price_shows_the_price_first(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    quote = await client.get(f"{base}/buy/quote", params=PRO_20)
    shown = await client.post(
        f"{base}/buy", data={**PRO_20, **(await handed_card(client)), **ADDRESS, "_csrf_token": csrf_of(quote.text)}
    )
    assert shown.status_code == 400
    assert "The price changed since you saw it: $13,200.00 USD now. Check the new price below" in shown.text
    assert await Subscription.count() == 0


async def test_the_change_quote_page_shows_a_changed_price_again(client, tree):
    await buy_pro_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    quote = await client.get(f"{base}/change/quote", params={"tier": "pro", "extra_users": 20, "read_only_users": 1})
    fields = quoted_fields(quote.text)
    assert set(fields) == {"quoted_total_cents", "quoted_currency", "quoted_tax_rate_bp", "quoted_key"}
    seller = await load_actor(tree.managers["sub"]["id"], None)
    await catalogue.save_item(
        seller, tree.sub["id"], "read_only_user", price_cents=6_00, included_users=None, active=True, now=NOW
    )
    form = {"tier": "pro", "extra_users": "20", "read_only_users": "1", **fields, "_csrf_token": csrf_of(quote.text)}
    changed = await client.post(f"{base}/change", data=form)
    assert changed.status_code == 400 and "The price changed since you saw it:" in changed.text
    assert "<h1>The price of the change</h1>" in changed.text
    assert await Invoice.count() == 1
    again = {**form, **quoted_fields(changed.text), "_csrf_token": csrf_of(changed.text)}
    done = await client.post(f"{base}/change", data=again)
    assert done.status_code == 302 and await Invoice.count() == 2
