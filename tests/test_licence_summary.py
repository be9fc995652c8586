"""One license summary per customer (plan, seats bought / held / free, the term's
end, how it renews, the next term's price), the same on its Licenses page, its
Billing page and its partner's page of it; a subscription's batches and orders
carry its plan's name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain.billing import cancellation, money, settlement, subscriptions
from portal.domain.errors import NotFound
from portal.domain.licences import auto_renewal
from portal.domain.licences.summary import licence_summary
from portal.domain.orders import order_list
from portal.tables import OutboxEmail
from tests.support import PROCESSOR, sign_in
from tests.test_billing_subscriptions import NOW as BOUGHT
from tests.test_billing_subscriptions import actors as billing_actors
from tests.test_billing_subscriptions import bought_online, pro
from tests.test_dashboard import NOW, YEAR, actors, batch_ending, learners

# Signs the list cursors in these tests (the app derives its own from SECRET_KEY).
SECRET = b"test cursor key"

PREMIUM = "Security Awareness Training — Premium"


async def test_no_license_says_so(tree):
    partner, _ = await actors(tree)
    got = await licence_summary(partner, tree.direct["id"], NOW)
    assert (got.plan, got.seats, got.held, got.free, got.ends_at, got.how) == (None, 0, 0, 0, None, "none")


async def test_running_batches_give_the_seats_and_the_partner_renews_when_asked(tree):
    partner, customer = await actors(tree)
    ends = NOW + timedelta(days=40)
    await batch_ending(partner, tree.direct, 5, ends, await learners(tree.direct, 3, "a"))
    await batch_ending(partner, tree.direct, 4, ends + timedelta(hours=2), await learners(tree.direct, 1, "b"))
    await batch_ending(partner, tree.direct, 7, NOW - timedelta(days=1))  # ended: not counted
    got = await licence_summary(customer, tree.direct["id"], NOW)
    assert (got.plan, got.seats, got.held, got.free) == (PREMIUM, 9, 4, 5)
    # Two batches ending on the same day: one end date.
    assert (got.ends_at, got.several_ends) == (ends, False)
    assert (got.how, got.renews, got.next_price) == ("partner", "Renewed by Acme MSP when asked", None)


async def test_batches_ending_on_different_days_say_several_with_the_next(tree):
    partner, customer = await actors(tree)
    first = NOW + timedelta(days=3)
    await batch_ending(partner, tree.direct, 2, first)
    await batch_ending(partner, tree.direct, 2, NOW + timedelta(days=90))
    got = await licence_summary(customer, tree.direct["id"], NOW)
    assert (got.seats, got.ends_at, got.several_ends) == (4, first, True)


@pytest.mark.parametrize(
    ("mode", "days", "how", "said"),
    [
        ("renew", 7, "automatic", "Renewed automatically by Acme MSP 7 days before it ends"),
        ("renew", 1, "automatic", "Renewed automatically by Acme MSP 1 day before it ends"),
        ("approve", 14, "approval", "Needs approval: a renewal order waits for Acme MSP 14 days before it ends"),
        ("off", 7, "partner", "Renewed by Acme MSP when asked"),
    ],
)
async def test_the_partners_automatic_renewal_setting_says_how_it_renews(tree, mode, days, how, said):
    partner, customer = await actors(tree)
    await batch_ending(partner, tree.direct, 3, NOW + YEAR - timedelta(days=1))
    await auto_renewal.save_setting(partner, tree.direct["id"], mode=mode, days_before=days, quantity="same", now=NOW)
    got = await licence_summary(customer, tree.direct["id"], NOW)
    assert (got.how, got.renews) == (how, said)


async def test_an_online_subscription_renews_itself_at_its_price_and_names_its_plan(tree):
    bought = await bought_online(tree)  # Pro, 10 included + 20 extra users, 2 read-only
    customer, seller = await billing_actors(tree)
    at = BOUGHT + timedelta(days=1)
    got = await licence_summary(seller, tree.north["id"], at)
    sub, invoice = bought["subscription"], bought["invoice"]
    assert (got.plan, got.label, got.seats, got.held, got.free) == ("Pro", "Pro (annual license)", 30, 0, 30)
    assert (got.ends_at, got.several_ends, got.how) == (sub["term_end"], False, "online")
    assert got.renews == "Renews automatically online on 10 Mar 2027"
    # No add-ons bought: the next term costs what the first did, at today's prices.
    assert got.next_price == money.format_money(invoice["total_cents"], invoice["currency"]) == "$13,320.00 USD"
    # The e-mail that its seats are ready names the plan, as the pages do.
    (ready,) = await OutboxEmail.select(OutboxEmail.body).where(OutboxEmail.kind == "order_assigned")
    assert "30 × Pro (annual license) for North Customer are paid for" in ready["body"]
    # The customer's manager sees the same.
    assert await licence_summary(customer, tree.north["id"], at) == got

    await cancellation.cancel(customer, sub["id"], at)
    got = await licence_summary(customer, tree.north["id"], at)
    assert (got.how, got.renews, got.next_price) == ("cancelled", "Cancelled: ends 10 Mar 2027", None)


async def test_an_invoice_subscription_is_renewed_by_paying_its_invoice(tree):
    customer, seller = await billing_actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(5, "invoice"), BOUGHT, processor=PROCESSOR)
    got = await licence_summary(customer, tree.north["id"], BOUGHT)
    assert (got.plan, got.seats, got.how, got.renews) == ("Pro", 0, "pending", "Starts when its first invoice is paid")
    # Its order waits in Requested Orders under the plan's name, not the product's.
    (order,) = (await order_list.list_orders(seller, {"status": "requested"}, None, SECRET)).items
    assert (order["id"], order["product_short"]) == (bought["invoice"]["order"], "Pro (annual license)")
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=BOUGHT)
    got = await licence_summary(customer, tree.north["id"], BOUGHT)
    assert (got.plan, got.seats, got.free, got.how) == ("Pro", 15, 15, "invoice")
    assert got.renews == "Renewed by paying an invoice before 10 Mar 2027"
    assert got.next_price == money.format_money(bought["invoice"]["total_cents"], "USD")


async def test_another_tenants_customer_is_not_found(tree):
    partner, _ = await actors(tree)
    with pytest.raises(NotFound):
        await licence_summary(partner, tree.other_customer["id"], NOW)


async def test_the_three_pages_show_one_summary_and_the_batches_carry_the_plan(client, tree):
    await bought_online(tree)
    north = tree.north["id"]
    await sign_in(client, tree.email("north"))
    for path in (f"/companies/{north}/licences", f"/companies/{north}/billing"):
        page = (await client.get(path)).text
        assert page.count('data-testid="license-summary"') == 1, path
        assert "Renews automatically online on 10 Mar 2027" in page and "30 bought, 0 held, 30 free" in page
    licences = (await client.get(f"/companies/{north}/licences")).text
    batches = licences.split('data-testid="batches"')[1].split("</table>")[0]
    assert "Pro (annual license)" in batches and "Premium" not in batches
    # The htmx tab alone does not carry it.
    tab = await client.get(
        f"/companies/{north}/licences?tab=active", headers={"HX-Request": "true", "HX-Target": "licence-tab"}
    )
    assert "license-summary" not in tab.text

    client.cookies.clear()
    await sign_in(client, tree.email("sub"))
    page = (await client.get(f"/companies/{north}")).text
    assert page.count('data-testid="license-summary"') == 1 and "$13,320.00 USD" in page
    orders = (await client.get("/licences/orders?status=any")).text
    assert "Pro (annual license)" in orders and "Premium" not in orders
    # The company page's figures name its running batches the same way.
    figures = (await client.get(f"/companies/{north}/summary")).text
    batches = figures.split('data-testid="summary-batches"')[1].split("</table>")[0]
    assert "Pro (annual license)" in batches and "Premium" not in batches
