"""The Admin Dashboard's figures against the database, the renewal
forecast's weeks against the batches, and "Renew same quantity". Each engine."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta

from portal import db
from portal.domain import forecast, partner_settings
from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.companies import insert_company
from portal.domain.dashboard import figures, same_quantity, wing_batches
from portal.domain.dashboard.customer_summary import customer_summary
from portal.domain.dashboard.figures import CustomerQuery
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions, requests
from portal.tables import Company, LicenceBatch, LicenceOrder, User
from tests.factories import add_user
from tests.support import csrf_of, sign_in

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
YEAR = relativedelta(months=12)


async def actors(tree):
    return (
        await load_actor(tree.managers["partner"]["id"], None),
        await load_actor(tree.managers["direct"]["id"], None),
    )


async def learners(company: dict, n: int, prefix: str) -> list[int]:
    return [(await add_user(company, f"{prefix}{i}@{company['id']}.example", role="learner"))["id"] for i in range(n)]


async def batch_ending(partner, company: dict, seats: int, ends: datetime, holders: list[int] = ()) -> dict:
    """A Premium batch assigned 12 months before `ends`, its seats given to `holders` then."""
    starts = ends - YEAR
    order = await requests.request_order(partner, company["id"], seats, None, "", starts)
    batch = await decisions.assign_order(partner, order["id"], starts)
    if holders:
        await allocation.allocate(partner, company["id"], Selection(user_ids=tuple(holders)), starts, batch["id"])
    return batch


async def scene(tree) -> dict:
    """Direct Customer: 3 expired, 2 expiring within 72 h, 1 more within 30 days,
    3 unlicensed (2 learners and its manager), 11 free seats, 1 pending request.
    North Customer: its manager waiting, no seats (low on seats)."""
    partner, _ = await actors(tree)
    direct = tree.direct
    await batch_ending(partner, direct, 5, NOW - timedelta(days=10), await learners(direct, 3, "gone"))
    await batch_ending(partner, direct, 4, NOW + timedelta(hours=48), await learners(direct, 2, "soon"))
    await batch_ending(partner, direct, 10, NOW + timedelta(days=20), await learners(direct, 1, "later"))
    await learners(direct, 2, "new")
    await requests.request_order(partner, direct["id"], 7, None, "", NOW - timedelta(days=1))
    return {"partner": partner}


async def counted_from_users(company_id: int, now: datetime) -> dict[str, int]:
    """The same figures counted the slow way, from the users, batches and orders."""
    active = (User.company == company_id) & (User.active == True)  # noqa: E712
    batches = await LicenceBatch.select().where(
        (LicenceBatch.company == company_id) & (LicenceBatch.starts_at <= now) & (LicenceBatch.ends_at > now)
    )
    return {
        "expired": await User.count().where(active & (User.licence_ends_at <= now)),
        "expiring_72h": await User.count().where(
            active & (User.licence_ends_at > now) & (User.licence_ends_at <= now + timedelta(hours=72))
        ),
        "expiring_30d": await User.count().where(
            active & (User.licence_ends_at > now) & (User.licence_ends_at <= now + timedelta(days=30))
        ),
        "unlicensed": await User.count().where(active & User.licence_ends_at.is_null()),
        "free": sum(b["seats"] - b["allocated"] for b in batches),
        "pending": await LicenceOrder.count().where(
            (LicenceOrder.company == company_id) & (LicenceOrder.status == "requested")
        ),
    }


FIGURES = ("expired", "expiring_72h", "expiring_30d", "unlicensed", "free", "pending")


async def test_customer_figures_match_the_database(tree):
    partner = (await scene(tree))["partner"]
    listing = await figures.customer_figures(partner, CustomerQuery(), NOW)
    page, alerts = listing.page, listing.alerts
    assert listing.pending == 1  # the wing's requests waiting for Assign
    rows = {row["name"]: row for row in page.items}
    assert set(rows) == {"Direct Customer", "North Customer"}  # customers only, never another tenant's
    direct = rows["Direct Customer"]
    assert {k: direct[k] for k in FIGURES} == {
        "expired": 3,
        "expiring_72h": 2,
        "expiring_30d": 3,
        "unlicensed": 3,
        "free": 11,
        "pending": 1,
    }
    for row in page.items:
        assert {k: row[k] for k in FIGURES} == await counted_from_users(row["id"], NOW), row["name"]
    assert direct["next_end"] == NOW + timedelta(hours=48)
    # Low on seats: North has 0 free seats and its manager waiting; Direct has 11 free.
    assert rows["North Customer"]["alert"] and not direct["alert"] and alerts == 1
    # The partner's own threshold: at most 11 free seats alerts Direct too.
    await partner_settings.save(partner, tree.partner["id"], max_order_quantity=10_000, low_seat_threshold=11, now=NOW)
    assert (await figures.customer_figures(partner, CustomerQuery(), NOW)).alerts == 2


async def test_sub_partner_sees_its_own_customers_only(tree):
    await scene(tree)
    sub = await load_actor(tree.managers["sub"]["id"], None)
    listing = await figures.customer_figures(sub, CustomerQuery(), NOW)
    assert [row["name"] for row in listing.page.items] == ["North Customer"]
    customer = await load_actor(tree.managers["north"]["id"], None)
    with pytest.raises(PermissionDenied):
        await figures.customer_figures(customer, CustomerQuery(), NOW)


async def test_customer_table_sorts_searches_and_pages(tree):
    partner = (await scene(tree))["partner"]
    async with db.write_transaction():
        for i in range(30):
            await insert_company(f"Bulk {i:02d}", "customer", tree.partner, NOW)
    by_expired = (await figures.customer_figures(partner, CustomerQuery(), NOW)).page
    assert by_expired.total == 32 and len(by_expired.items) == 25
    assert (by_expired.first, by_expired.last, by_expired.has_previous) == (1, 25, False)
    assert by_expired.items[0]["name"] == "Direct Customer"  # most expired first
    by_name = (await figures.customer_figures(partner, CustomerQuery(sort="name", descending=False), NOW)).page
    second = (
        await figures.customer_figures(
            partner, CustomerQuery(sort="name", descending=False, after=by_name.next_after), NOW
        )
    ).page
    assert [r["name"] for r in second.items] == [
        "Bulk 25",
        "Bulk 26",
        "Bulk 27",
        "Bulk 28",
        "Bulk 29",
        "Direct Customer",
        "North Customer",
    ]
    assert (second.first, second.last, second.total, second.has_next) == (26, 32, 32, False)
    fifty = (await figures.customer_figures(partner, CustomerQuery(per_page=50), NOW)).page
    assert len(fifty.items) == 32 and not fifty.has_next
    found = (await figures.customer_figures(partner, CustomerQuery(q="north"), NOW)).page
    assert [r["name"] for r in found.items] == ["North Customer"]
    literal = (await figures.customer_figures(partner, CustomerQuery(q="%"), NOW)).page
    assert literal.total == 0  # % is a character here, not a wildcard
    alerted = await figures.customer_figures(partner, CustomerQuery(alerts_only=True), NOW)
    assert [r["name"] for r in alerted.page.items] == ["North Customer"] and alerted.alerts == 1
    assert alerted.page.total == 1
    # An unknown sort key falls back to the default, never into the SQL.
    odd = (await figures.customer_figures(partner, CustomerQuery(sort="name; DROP TABLE company"), NOW)).page
    assert odd.items[0]["name"] == "Direct Customer"


async def walk(actor, query: CustomerQuery) -> list[list[dict]]:
    """Every page of the table by its Next links, then back again by its Previous links."""
    pages = [(await figures.customer_figures(actor, query, NOW)).page]
    while pages[-1].has_next:
        pages.append((await figures.customer_figures(actor, replace(query, after=pages[-1].next_after), NOW)).page)
    back = [pages[-1]]
    while back[-1].has_previous:
        back.append((await figures.customer_figures(actor, replace(query, before=back[-1].previous_before), NOW)).page)
    ids = [[row["id"] for row in p.items] for p in pages]
    assert [[row["id"] for row in p.items] for p in reversed(back)] == ids, "Previous retraces Next"
    assert [(p.first, p.last) for p in reversed(back)] == [(p.first, p.last) for p in pages]
    return pages


@pytest.mark.parametrize("sort", figures.SORTS)
@pytest.mark.parametrize("descending", [True, False])
async def test_paging_visits_every_customer_once_in_the_tables_order(tree, sort, descending):
    partner = (await scene(tree))["partner"]
    async with db.write_transaction():
        for i in range(57):
            # Equal names (under two parents) and equal figures: the order still has one place for each.
            await insert_company(f"Same {i // 2:02d}", "customer", (tree.partner, tree.sub)[i % 2], NOW)
    customers = await Company.count().where(
        (Company.kind == "customer") & Company.path.like(f"{tree.partner['path']}%")
    )
    for per_page in (25, 50):
        pages = await walk(partner, CustomerQuery(sort=sort, descending=descending, per_page=per_page))
        ids = [row["id"] for page in pages for row in page.items]
        assert len(ids) == len(set(ids)) == customers == 59
        assert [(p.first, p.last) for p in pages] == [
            (k + 1, min(k + per_page, customers)) for k in range(0, customers, per_page)
        ]
        assert all(p.total == customers for p in pages)
        if sort != "name":
            figures_seen = [row[sort] for page in pages for row in page.items]
            assert figures_seen == sorted(figures_seen, reverse=descending)
        else:
            names = [row["name"] for page in pages for row in page.items]
            assert names == sorted(names, reverse=descending)


async def test_search_and_filter_hold_on_every_page(tree):
    partner = (await scene(tree))["partner"]
    async with db.write_transaction():
        for i in range(40):
            await insert_company(f"Kept {i:02d}", "customer", tree.partner, NOW)
            await insert_company(f"Other {i:02d}", "customer", tree.partner, NOW)
    pages = await walk(partner, CustomerQuery(q="kept", sort="name", descending=True))
    names = [row["name"] for page in pages for row in page.items]
    assert names == [f"Kept {i:02d}" for i in range(39, -1, -1)]
    assert [(p.first, p.last, p.total) for p in pages] == [(1, 25, 40), (26, 40, 40)]
    # Low on seats: North Customer alone, and no page after it.
    alerted = await walk(partner, CustomerQuery(alerts_only=True))
    assert [[r["name"] for r in p.items] for p in alerted] == [["North Customer"]]


async def test_a_cursor_naming_another_tenants_customer_shows_only_the_wings_first_page(tree):
    partner = (await scene(tree))["partner"]
    first = (await figures.customer_figures(partner, CustomerQuery(), NOW)).page
    for cursor in ({"after": tree.other_customer["id"]}, {"before": tree.other_customer["id"]}, {"after": 10**6}):
        page = (await figures.customer_figures(partner, CustomerQuery(**cursor), NOW)).page
        assert [r["id"] for r in page.items] == [r["id"] for r in first.items]
        assert tree.other_customer["id"] not in [r["id"] for r in page.items]
    # The other partner, handed this wing's ids, sees its own customers only.
    other = await load_actor(tree.managers["other"]["id"], None)
    for cursor in ({"after": tree.direct["id"]}, {"before": tree.north["id"]}):
        page = (await figures.customer_figures(other, CustomerQuery(**cursor), NOW)).page
        assert {r["id"] for r in page.items} == {tree.other_customer["id"]}


async def test_pager_links_keep_search_sort_and_filter_without_javascript(tree, client):
    await scene(tree)
    async with db.write_transaction():
        for i in range(30):
            await insert_company(f"Paged {i:02d}", "customer", tree.partner, NOW)
    await sign_in(client, tree.email("partner"))
    first = await client.get("/dashboard?q=paged&sort=name&dir=desc")
    assert "1–25 of 30 customers matching" in first.text
    following = re.search(r'<a href="([^"]+)"[^>]*rel="next">Next →</a>', first.text)
    assert following and "q=paged" in following.group(1) and "sort=name" in following.group(1)
    assert "dir=desc" in following.group(1) and "after=" in following.group(1)
    second = await client.get(following.group(1).replace("&amp;", "&"))
    rows = re.findall(r'data-customer="([^"]+)"', second.text)
    assert rows == [f"Paged {i:02d}" for i in range(4, -1, -1)]
    assert "26–30 of 30 customers" in second.text and "Next →" not in second.text
    back = re.search(r'<a href="([^"]+)"[^>]*rel="prev">← Previous</a>', second.text)
    again = await client.get(back.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-customer="([^"]+)"', again.text)[0] == "Paged 29"
    # htmx asks the table alone; another tenant's id as a cursor is the first page.
    swapped = await client.get(
        f"/dashboard?sort=name&after={tree.other_customer['id']}",
        headers={"HX-Request": "true", "HX-Target": "customer-results"},
    )
    assert swapped.status_code == 200 and "<h1>" not in swapped.text
    assert "Other Customer" not in swapped.text and "1–25 of 32 customers" in swapped.text


# --- the forecast ----------------------------------------------------------------------


async def test_forecast_weeks_hold_the_batches_that_end_in_them(tree):
    partner, _ = await actors(tree)
    today = datetime(2026, 6, 10, tzinfo=UTC)
    ends = [NOW + timedelta(hours=1), NOW + timedelta(days=3), today + timedelta(days=7), today + timedelta(days=100)]
    for seats, end in zip((3, 4, 5, 6), ends, strict=True):
        await batch_ending(partner, tree.direct, seats, end)
    await batch_ending(partner, tree.north, 8, today + timedelta(days=7, hours=5))
    await batch_ending(partner, tree.direct, 9, today + timedelta(days=7 * 26 + 1))  # beyond the 26 weeks
    weeks = await forecast.ending_per_week(partner, NOW)
    assert len(weeks) == 26
    assert (weeks[0].batches, weeks[0].seats) == (2, 7)
    assert (weeks[1].batches, weeks[1].seats) == (2, 13)
    assert weeks[14].seats == 6 and weeks[14].start <= ends[3] < weeks[14].end
    assert sum(w.seats for w in weeks) == 26
    # Every bar against the batches: the sum of each week's seats, counted from the table.
    for week in weeks:
        inside = await LicenceBatch.select(LicenceBatch.seats).where(
            (LicenceBatch.ends_at >= week.start) & (LicenceBatch.ends_at < week.end)
        )
        assert week.seats == sum(b["seats"] for b in inside) and week.batches == len(inside)
        listed = await wing_batches.batches_between(partner, "ends_at", week.start, week.end, NOW)
        assert listed.total == week.batches and sum(b["seats"] for b in listed.items) == week.seats
    # The sub-partner's forecast holds North's batch only.
    sub = await load_actor(tree.managers["sub"]["id"], None)
    assert [w.seats for w in await forecast.ending_per_week(sub, NOW) if w.seats] == [8]


async def forecast_version(actor) -> str:
    return (await figures.customer_figures(actor, CustomerQuery(), NOW)).version


async def test_forecast_version_changes_with_every_batch_under_the_wing_and_only_those(tree):
    partner, _ = await actors(tree)
    sub = await load_actor(tree.managers["sub"]["id"], None)
    other = await load_actor(tree.managers["other"]["id"], None)
    before = {"partner": await forecast_version(partner), "sub": await forecast_version(sub)}
    batch = await batch_ending(partner, tree.direct, 5, NOW + timedelta(days=20))  # a new batch
    after_new = await forecast_version(partner)
    assert after_new != before["partner"]
    assert await forecast_version(sub) == before["sub"]  # Direct Customer is not under the sub-partner
    holders = await learners(tree.direct, 2, "held")
    assert await forecast_version(partner) == after_new  # users alone: no batch changed
    await allocation.allocate(partner, tree.direct["id"], Selection(user_ids=tuple(holders)), NOW, batch["id"])
    after_allocation = await forecast_version(partner)
    assert after_allocation != after_new  # the batch's seats held changed
    # Another partner's batch leaves this wing's version as it was, and the other way round.
    other_before = await forecast_version(other)
    await batch_ending(other, tree.other_customer, 3, NOW + timedelta(days=20))
    assert await forecast_version(partner) == after_allocation
    assert await forecast_version(other) != other_before
    await batch_ending(partner, tree.north, 2, NOW + timedelta(days=40))
    assert await forecast_version(sub) != before["sub"]


async def test_dashboard_counts_the_forecast_again_only_when_a_batch_changed(tree, client, monkeypatch):
    from portal.web import dashboard as web_dashboard

    partner, _ = await actors(tree)
    counted = []
    both_charts = forecast.both_charts

    async def counting(actor, now):
        counted.append(now)
        return await both_charts(actor, now)

    monkeypatch.setattr(web_dashboard.forecast, "both_charts", counting)
    await sign_in(client, tree.email("partner"))

    def seats_ending(html: str) -> int:
        return sum(int(n) for n in re.findall(r'data-seats="(\d+)"', html.split('id="assigned-chart-title"')[0]))

    first = await client.get("/dashboard")
    again = await client.get("/dashboard?sort=name")
    assert len(counted) == 1 and seats_ending(first.text) == seats_ending(again.text) == 0
    await batch_ending(partner, tree.direct, 7, utcnow() + timedelta(days=10))
    renewed = await client.get("/dashboard")
    assert len(counted) == 2 and seats_ending(renewed.text) == 7


async def test_renewals_made_are_the_seats_assigned_per_week(tree):
    partner, _ = await actors(tree)
    for seats, days_ago in ((2, 1), (3, 8), (4, 20), (50, 80)):
        order = await requests.request_order(
            partner, tree.direct["id"], seats, None, "", NOW - timedelta(days=days_ago)
        )
        await decisions.assign_order(partner, order["id"], NOW - timedelta(days=days_ago))
    weeks = await forecast.assigned_per_week(partner, NOW)
    assert len(weeks) == 8 and weeks[-1].start <= NOW < weeks[-1].end
    assert sum(w.seats for w in weeks) == 9  # 80 days ago is outside the 8 weeks
    assert weeks[-1].seats == 2


def test_ends_in_words():
    assert wing_batches.ends_in_words(NOW + timedelta(days=2, hours=3), NOW) == "in 2 days"
    assert wing_batches.ends_in_words(NOW + timedelta(hours=30), NOW) == "in 30 hours"
    assert wing_batches.ends_in_words(NOW + timedelta(hours=1), NOW) == "in 1 hour"
    assert wing_batches.ends_in_words(NOW + timedelta(minutes=5), NOW) == "in less than an hour"
    assert wing_batches.ends_in_words(NOW - timedelta(days=3), NOW) == "ended 3 days ago"


# --- "Renew same quantity" -----------------------------------------------------------------


async def test_partner_renews_same_quantity_in_one_action(tree):
    partner, _ = await actors(tree)
    old = await batch_ending(partner, tree.direct, 12, NOW + timedelta(days=5))
    offer = await same_quantity.renewal_offer(partner, old["id"], NOW)
    # A renewal runs on from the batch's end: no day paid for twice (tests/test_renewal_keeps_users.py).
    assert (offer["company_name"], offer["quantity"], offer["new_ends_at"]) == (
        "Direct Customer",
        12,
        old["ends_at"] + YEAR,
    )
    done = await same_quantity.renew_same_quantity(partner, old["id"], NOW)
    assert done["batch"]["seats"] == 12 and done["batch"]["starts_at"] == old["ends_at"]
    order = await LicenceOrder.select().where(LicenceOrder.id == done["order"]["id"]).first()
    assert order["status"] == "assigned" and order["product"] == old["product"]
    # A second click finds it renewed, and places nothing.
    with pytest.raises(ValidationFailed, match="already renewed"):
        await same_quantity.renew_same_quantity(partner, old["id"], NOW)
    assert await LicenceOrder.count().where(LicenceOrder.company == tree.direct["id"]) == 2


async def test_customer_manager_renewal_is_a_request(tree):
    partner, customer = await actors(tree)
    old = await batch_ending(partner, tree.direct, 6, NOW + timedelta(days=29))
    done = await same_quantity.renew_same_quantity(customer, old["id"], NOW)
    assert done["batch"] is None and done["order"]["status"] == "requested" and done["order"]["quantity"] == 6
    with pytest.raises(ValidationFailed, match="already waiting"):
        await same_quantity.renew_same_quantity(customer, old["id"], NOW)


async def test_renewal_is_refused_far_from_the_end_and_outside_the_wing(tree):
    partner, _ = await actors(tree)
    far = await batch_ending(partner, tree.direct, 6, NOW + timedelta(days=90))
    with pytest.raises(ValidationFailed, match="within 30 days"):
        await same_quantity.renew_same_quantity(partner, far["id"], NOW)
    other = await load_actor(tree.managers["other"]["id"], None)
    with pytest.raises(NotFound):
        await same_quantity.renewal_offer(other, far["id"], NOW)
    with pytest.raises(NotFound):
        await same_quantity.renewal_offer(partner, 2_000_000_000, NOW)
    assert await LicenceOrder.count() == 1


# --- the customer's summary ----------------------------------------------------------------


async def test_customer_summary_counts(tree):
    await scene(tree)
    _, customer = await actors(tree)
    summary = await customer_summary(customer, tree.direct["id"], NOW)
    assert {k: summary[k] for k in ("active", "expiring", "expired", "unlicensed", "pending", "free")} == {
        "active": 1,
        "expiring": 2,
        "expired": 3,
        "unlicensed": 3,
        "pending": 1,
        "free": 11,
    }
    assert [b["free"] for b in summary["batches"]] == [2, 9]
    assert [b["renewable"] for b in summary["batches"]] == [True, True]  # both end within 30 days
    assert summary["next_end"]["ends_at"] == NOW + timedelta(hours=48)
    with pytest.raises(NotFound):
        await customer_summary(customer, tree.north["id"], NOW)


# --- the pages --------------------------------------------------------------------------


async def test_dashboard_page_shows_figures_that_open_the_tab_in_manage_company(client, tree):
    partner, _ = await actors(tree)
    now = utcnow()
    await batch_ending(partner, tree.direct, 5, now - timedelta(days=3), await learners(tree.direct, 4, "gone"))
    await sign_in(client, tree.email("partner"))
    page = await client.get("/dashboard")
    assert page.status_code == 200
    row = re.search(r'<tr data-customer="Direct Customer".*?</tr>', page.text, re.S).group(0)
    expired = re.search(r'data-figure="expired">\s*<button[^>]*>([\d,]+)</button>', row, re.S).group(1)
    assert expired == "4"
    assert f'value="{tree.direct["id"]}:expired"' in row
    assert "All companies (3)" in page.text  # Acme North, North Customer, Direct Customer
    opened = await client.post(
        "/dashboard/open", data={"open": f"{tree.direct['id']}:expired", "_csrf_token": csrf_of(page.text)}
    )
    assert opened.status_code in (302, 303)
    assert opened.headers["location"] == f"/companies/{tree.direct['id']}/licences?tab=expired"
    tab = await client.get(opened.headers["location"])
    assert "Managing" in tab.text and "Direct Customer" in tab.text


async def test_dashboard_fragment_searches_and_a_bar_lists_its_batches(client, tree):
    partner, _ = await actors(tree)
    now = utcnow()
    await batch_ending(partner, tree.direct, 5, now + timedelta(days=10))
    await sign_in(client, tree.email("partner"))
    fragment = await client.get("/dashboard?q=north", headers={"HX-Request": "true", "HX-Target": "customer-results"})
    assert "North Customer" in fragment.text and "Direct Customer" not in fragment.text
    assert "<html" not in fragment.text
    page = await client.get("/dashboard")
    bars = re.findall(r'<a href="(/dashboard/batches\?field=ends_at[^"]+)"[^>]*data-seats="(\d+)"', page.text)
    assert len(bars) == 26 and sum(int(seats) for _, seats in bars) == 5
    (href,) = [href for href, seats in bars if seats == "5"]
    listed = await client.get(href.replace("&amp;", "&"))
    assert listed.status_code == 200 and "Direct Customer" in listed.text and "Renew same quantity" in listed.text
    assert (await client.get("/dashboard/batches?field=ends_at&start=2026-13-01&end=x")).status_code == 400


async def test_renew_page_confirms_then_places_and_assigns(client, tree):
    partner, _ = await actors(tree)
    old = await batch_ending(partner, tree.direct, 9, utcnow() + timedelta(days=2))
    await sign_in(client, tree.email("partner"))
    confirm = await client.get(f"/dashboard/batches/{old['id']}/renew?back=/dashboard")
    assert confirm.status_code == 200
    for said in ("Direct Customer", ">9<", "Premium", "Place and assign the order"):
        assert said in confirm.text
    assert await LicenceOrder.count() == 1  # asking placed nothing
    done = await client.post(
        f"/dashboard/batches/{old['id']}/renew", data={"back": "//evil.example", "_csrf_token": csrf_of(confirm.text)}
    )
    assert done.status_code in (302, 303) and done.headers["location"] == "/dashboard"
    assert await LicenceBatch.count().where(LicenceBatch.company == tree.direct["id"]) == 2
    again = await client.post(f"/dashboard/batches/{old['id']}/renew", data={"_csrf_token": csrf_of(confirm.text)})
    assert again.status_code == 409 and "already renewed" in again.text


async def test_customer_summary_fragment(client, tree):
    await sign_in(client, tree.email("direct"))
    answer = await client.get(f"/companies/{tree.direct['id']}/summary")
    assert answer.status_code == 200 and 'data-testid="customer-summary"' in answer.text
    assert (await client.get(f"/companies/{tree.north['id']}/summary")).status_code == 404
    assert (await client.get("/dashboard")).headers["location"] == f"/companies/{tree.direct['id']}"
    assert await Company.count() == 6


async def test_dashboard_routes_follow_the_wing(client, tree):
    """Another tenant's batch or company answers 404, before anything is placed;
    a customer manager cannot list the wing's batches."""
    partner, _ = await actors(tree)
    other = await load_actor(tree.managers["other"]["id"], None)
    theirs = await batch_ending(other, tree.other_customer, 3, utcnow() + timedelta(days=3))
    await sign_in(client, tree.email("partner"))
    page = await client.get("/dashboard")
    token = {"_csrf_token": csrf_of(page.text)}
    assert (await client.get(f"/dashboard/batches/{theirs['id']}/renew")).status_code == 404
    assert (await client.post(f"/dashboard/batches/{theirs['id']}/renew", data=token)).status_code == 404
    other_company = tree.other_customer["id"]
    assert (await client.post("/dashboard/open", data={**token, "open": f"{other_company}:free"})).status_code == 404
    assert (await client.post("/dashboard/open", data={**token, "open": "x"})).status_code == 404
    assert (await client.get(f"/companies/{other_company}/summary")).status_code == 404
    listed = await client.get("/dashboard/batches?field=ends_at&start=2020-01-01&end=2100-01-01")
    assert listed.status_code == 200 and "Other Customer" not in listed.text
    assert await LicenceOrder.count().where(LicenceOrder.company == other_company) == 1
    await client.post("/logout", data=token)
    await sign_in(client, tree.email("north"))
    assert (await client.get("/dashboard/batches?field=ends_at&start=2020-01-01&end=2100-01-01")).status_code == 403
    north_page = await client.get(f"/companies/{tree.north['id']}")
    opened = await client.post(
        "/dashboard/open", data={"open": f"{tree.north['id']}:expired", "_csrf_token": csrf_of(north_page.text)}
    )
    assert opened.status_code == 403  # Manage Company is a partner manager's
