"""The lists paged by cursor (portal/domain/keyset.py): a customer's Licenses tabs
(A→Z by name), its Orders tab and the partner's Requested Orders, Notifications and
invoices (newest first). Next to the end and Previous back visit every row once, in
the list's order, with ties in the sort's first column; the count and the page's
place in it ("26–50 of 62") are right; a cursor of another list, of another key, or
edited opens the first page; filters ride along in the links; another tenant sees
nothing of this one through a cursor; an old `?page=` link opens the first page."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from html import unescape

from piccolo.columns.combination import WhereRaw

from portal.domain import outbox
from portal.domain.access import load_actor
from portal.domain.billing import invoices
from portal.domain.keyset import KeysetPage
from portal.domain.licences import tabs
from portal.domain.orders import order_list, requests
from portal.tables import LicenceOrder, OutboxEmail, User
from portal.tables.billing import Invoice
from tests.factories import T0, add_user
from tests.support import sign_in
from tests.test_billing_invoices import issue

SECRET = b"test cursor key"
NOW = T0 + timedelta(days=30)
ROWS = 62  # two full pages and a part: 25 + 25 + 12

Fetch = Callable[[str | None], Awaitable[KeysetPage]]


def _ids(page: KeysetPage) -> list[int]:
    return [row["id"] for row in page.items]


async def walk(fetch: Fetch) -> list[list[int]]:
    """The pages' ids from the first page Next to the last, checked against the walk
    back with Previous, and each page's "first–last of total" against its place."""
    page = await fetch(None)
    pages, places = [], []
    while True:
        pages.append(_ids(page))
        places.append((page.first_number, page.last_number, page.total))
        if not page.has_next:
            break
        assert page.next_cursor
        page = await fetch(page.next_cursor)
    assert not page.has_next
    back, back_places = [pages[-1]], [places[-1]]
    while page.has_previous:
        assert page.previous_cursor
        page = await fetch(page.previous_cursor)
        back.append(_ids(page))
        back_places.append((page.first_number, page.last_number, page.total))
    assert back[::-1] == pages
    assert back_places[::-1] == places
    seen = 0
    for (first, last, total), ids in zip(places, pages, strict=True):
        assert (first, last) == (seen + 1, seen + len(ids))
        seen += len(ids)
        assert total == ROWS
    return pages


async def actors(tree):
    return (
        await load_actor(tree.managers["north"]["id"], None),
        await load_actor(tree.managers["partner"]["id"], None),
        await load_actor(tree.managers["other"]["id"], None),
    )


async def expired_learners(company: dict, n: int, prefix: str) -> None:
    """`n` learners whose licence ended before NOW, named in threes ("Learner 07" ×3)."""
    for i in range(n):
        user = await add_user(
            company, f"{prefix}{i}@{company['id']}.example", role="learner", name=f"Learner {i // 3:02d}"
        )
        await User.update({User.licence_ends_at: T0}).where(User.id == user["id"])


async def orders(tree, n: int) -> None:
    """`n` orders of North, requested in pairs at the same instant (the id decides)."""
    customer = await load_actor(tree.managers["north"]["id"], None)
    for i in range(n):
        await requests.request_order(customer, tree.north["id"], i + 1, None, "", T0 + timedelta(minutes=i // 2))


async def test_the_expired_tab_walks_a_to_z_by_name_then_id(tree):
    customer, _, _ = await actors(tree)
    await expired_learners(tree.north, ROWS, "n")
    await expired_learners(tree.other_customer, 5, "o")  # the same names, another tenant
    active = await add_user(tree.north, "active@north.example", role="learner", name="Learner 00")
    await User.update({User.licence_ends_at: NOW + timedelta(days=9)}).where(User.id == active["id"])

    async def fetch(cursor):
        return (await tabs.licence_view(customer, tree.north["id"], "expired", "", cursor, NOW, SECRET))["listing"]

    pages = await walk(fetch)
    expected = await (
        User.select(User.id, User.name)
        .where((User.company == tree.north["id"]) & (User.licence_ends_at <= NOW) & WhereRaw("portal_user.active"))
        .order_by(User.name, User.id)
    )
    assert sum(pages, []) == [row["id"] for row in expected]
    assert [len(p) for p in pages] == [25, 25, 12]
    names = [row["name"] for row in expected]
    assert names == sorted(names) and len(set(names)) < len(names)  # A→Z, with ties


async def test_a_search_narrows_the_tab_and_its_pages(tree):
    customer, _, _ = await actors(tree)
    await expired_learners(tree.north, ROWS, "n")
    first = (await tabs.licence_view(customer, tree.north["id"], "expired", "Learner 1", None, NOW, SECRET))["listing"]
    # "Learner 10" to "Learner 19" and "Learner 1" alone: 10 names × 3 = 30, 25 on the first page.
    assert (first.total, len(first.items), first.has_next) == (30, 25, True)
    second = (
        await tabs.licence_view(customer, tree.north["id"], "expired", "Learner 1", first.next_cursor, NOW, SECRET)
    )["listing"]
    assert (second.first_number, second.last_number, second.has_next) == (26, 30, False)
    assert all(row["name"].startswith("Learner 1") for row in first.items + second.items)


async def test_the_orders_tab_and_requested_orders_walk_newest_first(tree):
    customer, partner, _ = await actors(tree)
    await orders(tree, ROWS)
    expected = [
        row["id"]
        for row in await LicenceOrder.select(LicenceOrder.id)
        .where(LicenceOrder.company == tree.north["id"])
        .order_by(LicenceOrder.requested_at, LicenceOrder.id, ascending=False)
    ]
    tab = await walk(lambda cursor: order_list.company_orders(customer, tree.north["id"], cursor, SECRET))
    assert sum(tab, []) == expected
    filters = order_list.parse_filters({"customer": str(tree.north["id"])})
    requested = await walk(lambda cursor: order_list.list_orders(partner, filters, cursor, SECRET))
    assert sum(requested, []) == expected
    # The download reads the same list in chunks, each from the last row of the one before.
    chunks = [[row["id"] for row in chunk] async for chunk in order_list.iter_orders(partner, filters, chunk=7)]
    assert sum(chunks, []) == expected
    assert [len(chunk) for chunk in chunks] == [7] * 8 + [6]


async def test_notifications_walk_newest_first(tree):
    _, partner, _ = await actors(tree)
    for i in range(ROWS):  # in pairs queued at the same instant
        await outbox.queue_email(
            "order_assigned",
            tree.north["id"],
            [tree.email("north")],
            f"S{i}",
            "Hi",
            T0 + timedelta(minutes=i // 2),
            f"d{i}",
        )
    await outbox.queue_email("order_assigned", tree.other_customer["id"], ["x@other.example"], "Not ours", "", T0, "o")
    pages = await walk(lambda cursor: outbox.list_emails(partner, cursor, SECRET, {}))
    expected = await (
        OutboxEmail.select(OutboxEmail.id)
        .where(OutboxEmail.company == tree.north["id"])
        .order_by(OutboxEmail.created_at, OutboxEmail.id, ascending=False)
    )
    assert sum(pages, []) == [row["id"] for row in expected]


async def test_invoices_walk_by_when_they_were_made_then_id(tree):
    _, partner, _ = await actors(tree)
    for i in range(ROWS):  # in pairs made at the same instant
        await issue(tree, now=T0 + timedelta(hours=i // 2))
    pages = await walk(lambda cursor: invoices.list_invoices(partner, {}, cursor, SECRET))
    expected = await Invoice.select(Invoice.id).order_by(Invoice.created_at, Invoice.id, ascending=False)
    assert sum(pages, []) == [row["id"] for row in expected]
    customer_page = await walk(
        lambda cursor: invoices.list_invoices(partner, {"customer": tree.direct["id"]}, cursor, SECRET)
    )
    assert sum(customer_page, []) == [row["id"] for row in expected]


def _edited(cursor: str) -> list[str]:
    body, _, signature = cursor.partition(".")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    return [flipped + "." + signature, body + "." + signature[::-1], body, "x" + cursor, "🙂", "a.b.c", "%00"]


async def test_a_cursor_edited_signed_otherwise_or_of_another_list_opens_the_first_page(tree):
    customer, partner, _ = await actors(tree)
    await expired_learners(tree.north, ROWS, "n")
    await orders(tree, 30)

    async def tab(name, cursor, secret=SECRET):
        return (await tabs.licence_view(customer, tree.north["id"], name, "", cursor, NOW, secret))["listing"]

    first = await tab("expired", None)
    assert first.next_cursor and _ids(await tab("expired", first.next_cursor)) != _ids(first)
    for bad in _edited(first.next_cursor):
        page = await tab("expired", bad)
        assert (_ids(page), page.first_number) == (_ids(first), 1), bad
    assert _ids(await tab("expired", first.next_cursor, b"another key")) == _ids(first)
    # Another list's cursor, though signed with the same key: each list signs with its own scope.
    assert _ids(await tab("unlicensed", first.next_cursor)) == _ids(await tab("unlicensed", None))
    tab_orders = await order_list.company_orders(customer, tree.north["id"], None, SECRET)
    requested = await order_list.list_orders(partner, {"status": "requested"}, None, SECRET)
    assert tab_orders.next_cursor and requested.next_cursor
    assert _ids(await order_list.list_orders(partner, {"status": "requested"}, tab_orders.next_cursor, SECRET)) == (
        _ids(requested)
    )
    emails = await outbox.list_emails(partner, None, SECRET, {})
    assert _ids(await outbox.list_emails(partner, requested.next_cursor, SECRET, {})) == _ids(emails)


async def test_another_tenant_sees_nothing_of_this_one_through_a_cursor(tree, client):
    customer, partner, other = await actors(tree)
    await orders(tree, 30)
    other_customer = await load_actor(tree.managers["other_customer"]["id"], None)
    await requests.request_order(other_customer, tree.other_customer["id"], 3, None, "", T0)
    await expired_learners(tree.north, 30, "n")
    await expired_learners(tree.other_customer, 2, "o")
    ours = await order_list.list_orders(partner, {"status": "requested"}, None, SECRET)
    theirs = await order_list.list_orders(other, {"status": "requested"}, ours.next_cursor, SECRET)
    assert theirs.total == 1 and [o["company_id"] for o in theirs.items] == [tree.other_customer["id"]]
    tab = (await tabs.licence_view(customer, tree.north["id"], "expired", "", None, NOW, SECRET))["listing"]
    their_tab = (
        await tabs.licence_view(other_customer, tree.other_customer["id"], "expired", "", tab.next_cursor, NOW, SECRET)
    )["listing"]
    assert their_tab.total == 2 and {u["id"] for u in their_tab.items}.isdisjoint(_ids(tab))
    # Through the pages: the partner's cursor on the other partner's Requested Orders, and
    # North's tab cursor on North's address (not theirs: no such company) and on their own.
    await sign_in(client, tree.email("partner"))
    page = (await client.get("/licences/orders")).text
    cursor = _link(page, "next")
    client.cookies.clear()
    await sign_in(client, tree.email("other"))
    shown = (await client.get(cursor)).text
    assert "North Customer" not in shown and "1 order" in shown and "Other Customer" in shown
    client.cookies.clear()
    await sign_in(client, tree.email("other_customer"))
    north_tab = f"/companies/{tree.north['id']}/licences?tab=expired&cursor="
    assert (await client.get(north_tab + cursor.rpartition("cursor=")[2])).status_code == 404


def _link(html: str, rel: str) -> str:
    """The address of the pager's `rel` link, checked to be the same for htmx."""
    found = re.search(rf'<a href="([^"]+)" hx-get="([^"]+)" hx-target="#([\w-]+)" hx-push-url="true" rel="{rel}"', html)
    assert found, f"no {rel} link"
    assert found[1] == found[2]
    return unescape(found[1])


async def test_requested_orders_pages_keep_their_filters_and_say_where_they_are(client, tree):
    await orders(tree, ROWS)
    direct = await load_actor(tree.managers["direct"]["id"], None)
    await requests.request_order(direct, tree.direct["id"], 5, None, "", T0)  # filtered out below
    await sign_in(client, tree.email("partner"))
    url = f"/licences/orders?customer={tree.north['id']}&status=any"
    first = (await client.get(url)).text
    assert f"{ROWS} orders" in first and "1–25 of 62" in first and "← Previous" not in first
    following = _link(first, "next")
    assert f"customer={tree.north['id']}" in following and "status=any" in following
    second = await client.get(following, headers={"HX-Request": "true", "HX-Target": "order-results"})
    assert "<html" not in second.text and "26–50 of 62" in second.text
    third = (await client.get(_link(second.text, "next"))).text
    assert "51–62 of 62" in third and "Next →" not in third  # Direct's order is not among the 62
    back = _link(third, "prev")
    assert f"customer={tree.north['id']}" in back and "26–50 of 62" in (await client.get(back)).text
    # An address from before cursors: the first page.
    assert "1–25 of 62" in (await client.get(url + "&page=2")).text


async def test_the_tabs_notifications_and_invoices_links_keep_search_and_filters(client, tree):
    await expired_learners(tree.north, ROWS, "n")
    for i in range(30):
        await outbox.queue_email("order_assigned", tree.north["id"], [tree.email("north")], f"S{i}", "Hi", T0, f"d{i}")
    for i in range(30):
        await issue(tree, "north", now=T0 + timedelta(hours=i))
    await sign_in(client, tree.email("partner"))
    base = f"/companies/{tree.north['id']}/licences?tab=expired&q=Learner"
    page = (await client.get(base)).text
    following = _link(page, "next")
    assert "tab=expired" in following and "q=Learner" in following
    assert 'hx-target="#licence-tab"' in page and "1–25 of 62" in page
    # Select All still counts every match of the tab and search, not the page.
    counted = (await client.get(f"/companies/{tree.north['id']}/licences/select-all?tab=expired&q=Learner")).text
    assert 'data-testid="select-all-count">62<' in counted
    assert "26–50 of 62" in (await client.get(following)).text
    emails = (await client.get(f"/notifications?company={tree.north['id']}")).text
    assert f"company={tree.north['id']}" in _link(emails, "next") and "1–25 of 30" in emails
    bills = (await client.get(f"/billing/invoices?customer={tree.north['id']}")).text
    assert f"customer={tree.north['id']}" in _link(bills, "next") and "1–25 of 30" in bills
    assert "26–30 of 30" in (await client.get(_link(bills, "next"))).text
