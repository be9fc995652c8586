"""Seats paid for and not used: a customer with free seats of a running batch
while users (expired or unlicensed) wait is flagged on the Admin Dashboard and on
its own dashboard with "Allocate now", which opens Select All; Billing does not say
"No annual licence yet" to a customer that holds seats, and Buy warns when free
seats already cover the users waiting. Each engine."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.dashboard import figures
from portal.domain.dashboard.customer_summary import customer_summary
from portal.domain.dashboard.figures import CustomerQuery
from portal.domain.licences import allocation, tabs
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions, requests
from tests.factories import add_user
from tests.support import csrf_of, sign_in

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
YEAR = relativedelta(months=12)


async def partner_of(tree):
    return await load_actor(tree.managers["partner"]["id"], None)


async def learners(company: dict, n: int, prefix: str) -> list[int]:
    return [(await add_user(company, f"{prefix}{i}@{company['id']}.example", role="learner"))["id"] for i in range(n)]


async def batch(partner, company: dict, seats: int, ends: datetime, holders: list[int] = ()) -> dict:
    """A Premium batch assigned 12 months before `ends`, its seats given to `holders` then."""
    starts = ends - YEAR
    order = await requests.request_order(partner, company["id"], seats, None, "", starts)
    assigned = await decisions.assign_order(partner, order["id"], starts)
    if holders:
        await allocation.allocate(partner, company["id"], Selection(user_ids=tuple(holders)), starts, assigned["id"])
    return assigned


async def expired_with_free_seats(tree, now: datetime) -> dict:
    """Direct Customer: 3 learners expired, a running batch of 10 with 1 seat given
    (10 seats, 9 free), its manager unlicensed: 4 waiting, 9 free seats unused."""
    partner = await partner_of(tree)
    await batch(partner, tree.direct, 3, now - timedelta(days=5), await learners(tree.direct, 3, "gone"))
    running = await batch(partner, tree.direct, 10, now + timedelta(days=200), await learners(tree.direct, 1, "on"))
    return running


# --- the rule ---------------------------------------------------------------------------


def test_seats_are_unused_only_while_someone_waits_and_a_seat_is_free():
    assert tabs.seats_unused(free=23, waiting=9)
    assert not tabs.seats_unused(free=0, waiting=9)
    assert not tabs.seats_unused(free=23, waiting=0)
    # Allocate now opens Expired Licenses while anyone's licence has expired, else Unlicensed.
    assert tabs.allocate_tab(expired=9) == "expired" and tabs.allocate_tab(expired=0) == "unlicensed"
    covered = tabs.SeatsAndWaiting(free=23, expired=9, unlicensed=2, seats=40)
    assert covered.waiting == 11 and covered.unused and covered.covered and covered.tab == "expired"
    short = tabs.SeatsAndWaiting(free=2, expired=0, unlicensed=11, seats=8)
    assert short.unused and not short.covered and short.tab == "unlicensed"


async def test_the_admin_dashboard_flags_customers_with_seats_unused(tree):
    partner = await partner_of(tree)
    await expired_with_free_seats(tree, NOW)
    # North Customer: its manager waits and no seat is free (low on seats, not unused).
    rows = {r["name"]: r for r in (await figures.customer_figures(partner, CustomerQuery(), NOW)).page.items}
    direct, north = rows["Direct Customer"], rows["North Customer"]
    assert (direct["free"], direct["waiting"], direct["unused"], direct["allocate_tab"]) == (9, 4, True, "expired")
    assert not north["unused"] and north["alert"]
    # Read again from the kept figures (fresh now): the same flag.
    again = {r["name"]: r for r in (await figures.customer_figures(partner, CustomerQuery(), NOW)).page.items}
    assert again["Direct Customer"]["unused"] and not again["North Customer"]["unused"]


async def test_a_customer_whose_waiting_users_are_all_unlicensed_opens_the_unlicensed_tab(tree):
    partner = await partner_of(tree)
    await batch(partner, tree.north, 5, NOW + timedelta(days=90))  # its manager alone waits
    rows = {r["name"]: r for r in (await figures.customer_figures(partner, CustomerQuery(), NOW)).page.items}
    north = rows["North Customer"]
    assert (north["expired"], north["waiting"], north["unused"], north["allocate_tab"]) == (0, 1, True, "unlicensed")
    # Once everyone holds a seat, free seats are no longer flagged.
    await allocation.allocate(partner, tree.north["id"], Selection(select_all_tab="unlicensed"), NOW)
    rows = {r["name"]: r for r in (await figures.customer_figures(partner, CustomerQuery(), NOW)).page.items}
    assert rows["North Customer"]["free"] == 4 and not rows["North Customer"]["unused"]


async def test_the_customers_own_summary_flags_seats_unused(tree):
    await expired_with_free_seats(tree, NOW)
    customer = await load_actor(tree.managers["direct"]["id"], None)
    summary = await customer_summary(customer, tree.direct["id"], NOW)
    assert (summary["free"], summary["waiting"], summary["unused"], summary["allocate_tab"]) == (9, 4, True, "expired")
    north = await customer_summary(await partner_of(tree), tree.north["id"], NOW)
    assert not north["unused"]  # waiting, but no seat free


# --- the pages --------------------------------------------------------------------------


def customer_row(page: str, name: str) -> str:
    return re.search(rf'<tr data-customer="{name}".*?</tr>', page, re.S).group(0)


async def test_allocate_now_on_the_admin_dashboard_opens_select_all_in_manage_company(client, tree):
    running = await expired_with_free_seats(tree, utcnow())
    await sign_in(client, tree.email("partner"))
    page = await client.get("/dashboard")
    direct = customer_row(page.text, "Direct Customer")
    assert "Seats unused: 9 free, 4 waiting" in direct
    assert f'value="{tree.direct["id"]}:allocate-expired"' in direct and ">Allocate now</button>" in direct
    assert "Allocate now" not in customer_row(page.text, "North Customer")
    opened = await client.post(
        "/dashboard/open", data={"open": f"{tree.direct['id']}:allocate-expired", "_csrf_token": csrf_of(page.text)}
    )
    assert opened.status_code in (302, 303)
    assert opened.headers["location"] == f"/companies/{tree.direct['id']}/licences/select-all?tab=expired"
    select_all = await client.get(opened.headers["location"])
    assert "Managing" in select_all.text and "Direct Customer" in select_all.text
    assert re.search(r'data-testid="select-all-count">3<', select_all.text)
    assert f'<option value="{running["id"]}" selected>' in select_all.text
    # A value not of the table's making still lands on a tab that exists.
    odd = await client.post(
        "/dashboard/open", data={"open": f"{tree.direct['id']}:allocate-active", "_csrf_token": csrf_of(page.text)}
    )
    assert odd.headers["location"] == f"/companies/{tree.direct['id']}/licences/select-all?tab=expired"


async def test_the_customers_dashboard_links_allocate_now_to_select_all(client, tree):
    await expired_with_free_seats(tree, utcnow())
    await sign_in(client, tree.email("direct"))
    summary = await client.get(f"/companies/{tree.direct['id']}/summary")
    assert "Seats unused:" in summary.text and "9 free seats while 4 users wait for one." in summary.text
    href = f"/companies/{tree.direct['id']}/licences/select-all?tab=expired"
    assert f'<a href="{href}" data-testid="allocate-now">Allocate now</a>' in summary.text
    assert (await client.get(href)).status_code == 200


async def test_billing_and_subscriptions_say_what_seats_a_customer_holds_instead_of_no_licence(client, tree):
    await sign_in(client, tree.email("north"))
    bare = await client.get(f"/companies/{tree.north['id']}/billing")
    assert "No annual license yet." in bare.text  # nothing held, nothing bought
    assert "No active license." in (await client.get(f"/companies/{tree.north['id']}/billing/subscriptions")).text
    await batch(await partner_of(tree), tree.north, 5, utcnow() + timedelta(days=90))
    page = await client.get(f"/companies/{tree.north['id']}/billing")
    assert page.status_code == 200
    assert "No annual license yet" not in page.text
    assert "North Customer holds 5 seats of running license batches, 5 free" in page.text
    subscriptions = await client.get(f"/companies/{tree.north['id']}/billing/subscriptions")
    assert "No active license" not in subscriptions.text
    assert "North Customer holds 5 seats of running license batches, 5 free" in subscriptions.text


async def test_buy_warns_when_free_seats_already_cover_the_users_waiting(client, tree):
    partner = await partner_of(tree)
    await sign_in(client, tree.email("north"))
    url = f"/companies/{tree.north['id']}/billing/buy"
    assert 'data-testid="seats-cover"' not in (await client.get(url)).text  # no seat at all
    small = await batch(partner, tree.north, 1, utcnow() + timedelta(days=90))
    await learners(tree.north, 2, "new")  # 3 waiting (2 learners and the manager), 1 free: not covered
    assert 'data-testid="seats-cover"' not in (await client.get(url)).text
    await batch(partner, tree.north, 4, utcnow() + timedelta(days=120))
    page = await client.get(url)
    assert page.status_code == 200
    warning = re.search(r'<p class="alert warn" role="status" data-testid="seats-cover">.*?</p>', page.text, re.S)
    assert warning, page.text
    assert "5 free seats are already there in running license batches, enough for the 3 users waiting" in warning[0]
    assert f'href="/companies/{tree.north["id"]}/licences/select-all?tab=unlicensed"' in warning[0]
    assert small["seats"] == 1
