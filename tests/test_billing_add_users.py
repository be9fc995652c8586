""" "Add users" on the customer's Billing: its own action beside Upgrade, buying more
user credits on the plan held, pro rata to the term's end, with the price and what
changes said before, and what changed said after."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from portal.domain.billing import changes, money, quotes
from portal.domain.billing.renewal import invoice_subscriptions
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.tables import LicenceBatch
from portal.tables.billing import Invoice, Subscription
from tests.support import PROCESSOR, csrf_of, sign_in
from tests.test_billing_subscriptions import NOW, actors, bought_online
from tests.test_billing_web import ADDRESS, buy, buy_pro_online, confirm_quote, flashes

_ERRORS = re.compile(r'class="field-error" role="alert">([^<]*)<')


async def test_add_users_is_its_own_action_beside_upgrade(client, tree):
    await buy_pro_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    for page in (base, f"{base}/subscriptions"):
        text = (await client.get(page)).text
        assert f'<a class="button light" href="{base}/add-users">Add users</a>' in text, page
        assert f'<a class="button light" href="{base}/change">Upgrade</a>' in text, page
    form = await client.get(f"{base}/add-users")
    assert form.status_code == 200
    assert "<h1>Add users</h1>" in form.text and "<legend>Additional Users</legend>" in form.text
    # What is held now, said before anything is chosen: Pro's 10 included + 20 extra.
    assert "has Pro with 30 standard users and 0 read-only users until" in form.text
    assert "Standard user credits to add ($30.00 USD per user per month)" in form.text
    assert "Read-only user credits to add ($5.00 USD per user per month)" in form.text
    assert 'name="tier"' not in form.text


async def test_add_users_shows_the_pro_rata_price_and_the_users_after_then_charges_it(client, tree):
    subscription_id = await buy_pro_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    before = datetime.now(UTC)
    quote = await client.get(f"{base}/add-users/quote", params={"standard_users": 5, "read_only_users": 2})
    after = datetime.now(UTC)
    assert quote.status_code == 200, quote.text[:1000]
    sub = await Subscription.select().where(Subscription.id == subscription_id).first()
    # 5 × $30 × 12 + 2 × $5 × 12 = $1,920.00 a whole term, for the days left (a midnight may pass meanwhile).
    expected = {
        money.format_money(money.prorate(180_000, sub["term_start"], sub["term_end"], at), "USD")
        for at in (before, after)
    }
    lines = re.findall(r"<tr><td>([^<]+)</td>", quote.text)
    assert [line.split(",")[0] for line in lines] == ["5 × Additional standard user", "2 × Read-only user"]
    assert "After this: 35 standard users and 2 read-only users on Pro" in quote.text
    assert f'action="/companies/{tree.north["id"]}/billing/add-users"' in quote.text
    assert await Invoice.count() == 1  # the quote wrote nothing
    shown = re.search(r'data-testid="total">([^<]+)<', quote.text).group(1)

    done = await confirm_quote(
        client,
        f"{base}/add-users/quote?standard_users=5&read_only_users=2",
        f"{base}/add-users",
        {"standard_users": "5", "read_only_users": "2"},
    )
    assert done.status_code == 302, done.text[:2000]
    page = await client.get(done.headers["location"])
    said = flashes(page.text)
    assert len(said) == 1, said
    assert said[0].startswith(
        f"Added 5 standard users and 2 read-only users: charged {shown} pro rata (invoice INV-00002)."
    )
    assert " 5 more licenses are ready to allocate, until " in said[0]
    assert expected and 'data-testid="seats">35' in page.text
    now = await Subscription.select().where(Subscription.id == subscription_id).first()
    assert (now["tier"], now["extra_users"], now["read_only_users"]) == ("pro", 25, 2)
    assert sorted(b["seats"] for b in await LicenceBatch.select(LicenceBatch.seats)) == [5, 30]


async def test_add_users_by_invoice_issues_an_invoice_for_the_users(client, tree):
    await sign_in(client, tree.email("north"))
    purchase = {"tier": "lite", "extra_users": "0", "read_only_users": "0", "method": "invoice"}
    assert (await buy(client, tree.north["id"], purchase, ADDRESS)).status_code == 302
    # Partner staff record the purchase's payment: the term runs.
    invoice = await Invoice.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    page = await client.get(f"/invoices/{invoice['id']}")
    paid = await client.post(
        f"/invoices/{invoice['id']}/payment",
        data={"method": "check", "reference": "CHK 1", "_csrf_token": csrf_of(page.text)},
    )
    assert paid.status_code == 302
    client.cookies.clear()
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    quote = await client.get(f"{base}/add-users/quote?standard_users=1&read_only_users=0")
    assert "An invoice for" in quote.text and "the added users come when it is paid" in quote.text
    done = await confirm_quote(
        client,
        f"{base}/add-users/quote?standard_users=1&read_only_users=0",
        f"{base}/add-users",
        {"standard_users": "1", "read_only_users": "0"},
    )
    assert done.status_code == 302
    said = flashes((await client.get(done.headers["location"])).text)
    assert len(said) == 1 and said[0].startswith("Invoice INV-00002 for $"), said
    assert said[0].endswith("was issued for 1 standard user, pro rata. They are added once it is paid."), said
    subscription = await Subscription.select().first()
    assert subscription["extra_users"] == 0  # not before it is paid


async def test_add_users_refuses_what_is_not_a_number_or_nothing_and_keeps_what_was_typed(client, tree):
    await buy_pro_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    bad = await client.get(f"{base}/add-users/quote?standard_users=lots&read_only_users=3")
    assert bad.status_code == 400
    assert _ERRORS.findall(bad.text) == ["Enter a whole number of users (0 or more)."]
    assert 'value="lots"' in bad.text and 'name="read_only_users" min="0" inputmode="numeric" value="3"' in bad.text
    summary = re.search(r'<div class="error-summary" role="alert"[^>]*>(.*?)</div>', bad.text, re.S)
    assert summary is not None and '<a href="#standard_users">' in summary.group(1)
    nothing = await client.get(f"{base}/add-users/quote?standard_users=0&read_only_users=0")
    assert nothing.status_code == 400
    assert _ERRORS.findall(nothing.text) == ["Enter how many users to add: 1 or more."]
    # "Change the choice" on the price page comes back with the counts chosen.
    back = await client.get(f"{base}/add-users?standard_users=4&read_only_users=1")
    assert 'name="standard_users" min="0" inputmode="numeric" value="4"' in back.text
    # A tampered confirmation (no price shown) is the price page again, nothing bought.
    form = await client.get(f"{base}/add-users/quote?standard_users=4&read_only_users=0")
    tampered = await client.post(
        f"{base}/add-users",
        data={"standard_users": "4", "read_only_users": "0", "_csrf_token": csrf_of(form.text)},
    )
    assert tampered.status_code == 400 and 'data-testid="quote"' in tampered.text
    assert await Invoice.count() == 1


async def test_without_a_running_subscription_there_is_nothing_to_add_users_to(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    assert "/add-users" not in (await client.get(base)).text
    assert (await client.get(f"{base}/add-users")).status_code == 404


async def test_users_added_keep_a_reduction_set_for_the_next_term_with_them_on_top(tree):
    """Fewer users asked for the next term (20 → 8 standard, 2 → 0 read-only), then 5
    standard users added now: 25 now, 13 and 0 from the next term; the renewal invoice
    already issued bills those."""
    bought = await bought_online(tree, extra=20)
    customer, _ = await actors(tree)
    sub = bought["subscription"]
    later = NOW + timedelta(days=30)
    await changes.change(
        customer, sub["id"], tier="pro", extra_users=8, read_only_users=0, now=later, processor=PROCESSOR
    )
    await invoice_subscriptions.request_invoice(customer, sub["id"], later)
    quote = await quotes.quote_add_users(customer, sub["id"], standard_users=5, read_only_users=0, now=later)
    assert "From 10 Mar 2027: 13 × Additional standard user, as set before with those added now." in quote.notes
    assert "From 10 Mar 2027: 0 × Read-only user, as set before with those added now." in quote.notes

    added = await changes.add_users(
        customer,
        sub["id"],
        standard_users=5,
        read_only_users=0,
        now=later,
        quoted=quotes.Quoted(quote.totals.total_cents, quote.totals.currency, quote.totals.tax_rate_bp, "k1"),
        processor=PROCESSOR,
    )
    row = added["subscription"]
    assert added["added"] == (5, 0) and added["invoice"]["status"] == "paid"
    assert (row["extra_users"], row["next_extra_users"], row["read_only_users"], row["next_read_only_users"]) == (
        25,
        13,
        2,
        0,
    )
    # $6,000 + 13 × $360, reissued for the next term.
    assert added["renewal_invoice"]["total_cents"] == 1_068_000


async def test_add_users_refuses_nothing_to_add_and_read_only_managers(tree):
    bought = await bought_online(tree, extra=0)
    customer, _ = await actors(tree)
    sub = bought["subscription"]
    with pytest.raises(ValidationFailed) as refused:
        await quotes.quote_add_users(customer, sub["id"], standard_users=0, read_only_users=0, now=NOW)
    assert refused.value.errors == {"standard_users": "Enter how many users to add: 1 or more."}
    with pytest.raises(ValidationFailed) as refused:
        await quotes.quote_add_users(customer, sub["id"], standard_users=-1, read_only_users=0, now=NOW)
    assert set(refused.value.errors) == {"standard_users"}
    viewer = dataclasses.replace(customer, read_only=True)
    with pytest.raises(PermissionDenied):
        await changes.add_users(viewer, sub["id"], standard_users=1, read_only_users=0, now=NOW, processor=PROCESSOR)
