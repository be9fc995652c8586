"""The guides' licence flow through HTTP: Request Licenses → Requested Orders →
Assign → Expired Licenses → Select All → Allocate Licenses."""

from __future__ import annotations

import re

from portal.domain.catalogue import PREMIUM, product_by_code
from portal.tables import Allocation, AuditEntry, LicenceBatch, LicenceOrder, OutboxEmail
from tests.factories import add_user
from tests.support import csrf_headers, post_form, sign_in

HTMX = {"HX-Request": "true"}
CONFIRM = {"confirm": "1"}  # the Assign confirmation's button


def row_htmx(order_id: int) -> dict[str, str]:
    """What htmx sends from the row menu: its target is the row (hx-target="closest tr")."""
    return {**HTMX, "HX-Target": f"order-{order_id}"}


async def request_licences(client, company_id: int, quantity, po: str = "", confirm: bool = True):
    """ "Save" on Request Licenses; `confirm` as "Request anyway" sends it, past any warning."""
    premium = await product_by_code(PREMIUM)
    page = f"/companies/{company_id}/licences/orders/new"
    form = {"quantity": quantity, "po_number": po, "product_id": premium["id"]}
    return await post_form(
        client, page, f"/companies/{company_id}/licences/orders", {**form, "confirm": "1"} if confirm else form
    )


async def test_request_licenses_validates_and_queues_an_email(client, tree):
    await sign_in(client, tree.email("north"))
    bad = await request_licences(client, tree.north["id"], "zero")
    assert bad.status_code == 400 and "Enter how many licenses, 1 or more." in bad.text
    assert await LicenceOrder.count() == 0
    done = await request_licences(client, tree.north["id"], 25, po="PO-42")
    assert done.headers["location"] == f"/companies/{tree.north['id']}/licences?tab=orders"
    page = await client.get(done.headers["location"])
    assert "PO-42" in page.text and "Requested" in page.text
    assert "Your request for 25 licenses was sent to your account managers." in page.text
    mail = await OutboxEmail.select().where(OutboxEmail.kind == "order_requested").first()
    assert mail["to_email"] == tree.email("sub") and "25" in mail["subject"]


async def test_partner_filters_requested_orders_and_assigns_from_the_row(client, tree):
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 25)
    await request_licences(client, tree.north["id"], 3)
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))

    page = await client.get("/licences/orders")
    assert "Requested Orders" in page.text and "Add Filter" in page.text and "2 orders" in page.text
    fragment = await client.get(
        "/licences/orders",
        params={"status": "requested", "min_quantity": 10},
        headers={**HTMX, "HX-Target": "order-results"},
    )
    assert "<html" not in fragment.text and "1 order" in fragment.text
    order_id = int(re.search(r'data-order="(\d+)"', fragment.text).group(1))
    field = await client.get("/licences/orders/filters/customer", headers=HTMX)
    assert 'name="customer"' in field.text and "North Customer" in field.text

    headers = {**await csrf_headers(client, "/licences/orders"), **row_htmx(order_id)}
    asked = await client.post(f"/licences/orders/{order_id}/assign", headers=headers)
    assert asked.status_code == 200 and 'data-testid="assign-confirm"' in asked.text and "<html" not in asked.text
    assert await LicenceBatch.count() == 0  # asking writes nothing
    row = await client.post(f"/licences/orders/{order_id}/assign", data=CONFIRM, headers=headers)
    assert row.status_code == 200 and ">Assigned<" in row.text and "<html" not in row.text
    again = await client.post(f"/licences/orders/{order_id}/assign", data=CONFIRM, headers=headers)
    assert "This order is already assigned; it cannot be assigned." in again.text
    assert await LicenceBatch.count() == 1
    assert await OutboxEmail.count().where(OutboxEmail.kind == "order_assigned") == 1
    outbox = await client.get("/outbox", follow_redirects=True)
    assert "ready to allocate" in outbox.text


async def test_decline_needs_a_reason(client, tree):
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 5)
    order = await LicenceOrder.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("sub"))
    headers = {**await csrf_headers(client, "/licences/orders"), **row_htmx(order["id"])}
    empty = await client.post(f"/licences/orders/{order['id']}/decline", data={"reason": " "}, headers=headers)
    assert "Say why" in empty.text
    done = await client.post(f"/licences/orders/{order['id']}/decline", data={"reason": "Budget"}, headers=headers)
    assert "Declined" in done.text and "Budget" in done.text


async def test_the_rows_menu_offers_assign_and_decline_while_requested(client, tree):
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 5)
    order = await LicenceOrder.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    menu = await client.get(
        f"/licences/orders/{order['id']}/menu", headers={**HTMX, "HX-Target": f"menu-{order['id']}"}
    )
    assert ">Assign</button>" in menu.text and ">Decline</button>" in menu.text and "<html" not in menu.text
    headers = {**await csrf_headers(client, "/licences/orders"), **HTMX}
    await client.post(f"/licences/orders/{order['id']}/assign", data=CONFIRM, headers=headers)
    menu = await client.get(
        f"/licences/orders/{order['id']}/menu", headers={**HTMX, "HX-Target": f"menu-{order['id']}"}
    )
    assert "Assign" not in menu.text and "Decline" not in menu.text
    assert f"/companies/{tree.north['id']}/licences" in menu.text


async def assign_all(client, tree) -> None:
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    headers = {**await csrf_headers(client, "/licences/orders"), **HTMX}
    for order in await LicenceOrder.select().where(LicenceOrder.status == "requested"):
        await client.post(f"/licences/orders/{order['id']}/assign", data=CONFIRM, headers=headers)


async def seats_assigned(client, tree, seats: int) -> None:
    """North's manager requests `seats`, the partner assigns them, North's manager is signed in again."""
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], seats)
    await assign_all(client, tree)
    client.cookies.clear()
    await sign_in(client, tree.email("north"))


async def test_select_all_then_allocate_licenses_in_manage_mode(client, tree):
    for n in range(30):
        await add_user(tree.north, f"l{n:02d}@north.example", role="learner")
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 40)
    await assign_all(client, tree)
    await client.post(f"/companies/{tree.north['id']}/manage", headers=await csrf_headers(client))

    page = await client.get(f"/companies/{tree.north['id']}/licences?tab=unlicensed")
    assert 'data-testid="manage-banner"' in page.text and "1–25 of 31" in page.text
    confirm = await client.get(
        f"/companies/{tree.north['id']}/licences/select-all",
        params={"tab": "unlicensed"},
        headers={**HTMX, "HX-Target": "select-all"},
    )
    assert "<html" not in confirm.text
    assert 'data-testid="select-all-count">31<' in confirm.text  # 30 learners and the manager, all pages
    allocated = await post_form(
        client,
        f"/companies/{tree.north['id']}/licences?tab=unlicensed",
        f"/companies/{tree.north['id']}/licences/allocate",
        {"select_all": "unlicensed", "tab": "unlicensed", "q": ""},
    )
    result = await client.get(allocated.headers["location"])
    assert "31 users renewed until" in result.text
    assert await Allocation.count() == 31


async def test_too_few_seats_allocates_nothing_and_offers_the_free_ones(client, tree):
    ids = [(await add_user(tree.north, f"x{n}@north.example", role="learner"))["id"] for n in range(5)]
    await seats_assigned(client, tree, 3)
    page = f"/companies/{tree.north['id']}/licences?tab=unlicensed"
    opened = await client.get(page)
    token = re.search(r'name="_csrf_token" value="([^"]+)"', opened.text).group(1)
    form = {"_csrf_token": token, "tab": "unlicensed", "user_id": [str(i) for i in ids]}
    short = await client.post(f"/companies/{tree.north['id']}/licences/allocate", data=form)
    assert short.status_code == 409
    assert "5 users are selected but only 3 seats are free. Nothing was allocated." in short.text
    assert "Allocate the 3 free seats" in short.text and "Request Licenses" in short.text
    assert await Allocation.count() == 0
    partial = await client.post(f"/companies/{tree.north['id']}/licences/allocate", data={**form, "up_to_free": "1"})
    assert "3 users renewed until" in (await client.get(partial.headers["location"])).text


async def test_user_page_shows_status_and_history_and_deactivating_frees_the_seat(client, tree):
    learner = await add_user(tree.north, "leaver@north.example", role="learner")
    await seats_assigned(client, tree, 1)
    await post_form(
        client,
        f"/companies/{tree.north['id']}/licences?tab=unlicensed",
        f"/companies/{tree.north['id']}/licences/allocate",
        {"user_id": learner["id"], "tab": "unlicensed"},
    )
    page = await client.get(f"/companies/{tree.north['id']}/users/{learner['id']}")
    assert 'data-testid="licence-status">Active<' in page.text and "Security Awareness Training" in page.text
    await post_form(
        client,
        f"/companies/{tree.north['id']}/users/{learner['id']}",
        f"/companies/{tree.north['id']}/users/{learner['id']}/deactivate",
        {},
    )
    batch = await LicenceBatch.select().first()
    assert batch["allocated"] == 0


async def test_new_learner_gets_a_free_seat_automatically(client, tree):
    await seats_assigned(client, tree, 1)
    await post_form(
        client,
        f"/companies/{tree.north['id']}/users/new",
        f"/companies/{tree.north['id']}/users",
        {"name": "New One", "email": "new@north.example", "role": "learner"},
    )
    await post_form(
        client,
        f"/companies/{tree.north['id']}/users/new",
        f"/companies/{tree.north['id']}/users",
        {"name": "Too Late", "email": "late@north.example", "role": "learner"},
    )
    seats = await Allocation.select(Allocation.user.email.as_alias("email"))
    assert [s["email"] for s in seats] == ["new@north.example"]


async def test_another_tenants_order_batch_and_user_ids_answer_404(client, tree):
    learner = await add_user(tree.other_customer, "them@other.example", role="learner")
    await sign_in(client, tree.email("other_customer"))
    await request_licences(client, tree.other_customer["id"], 2)
    order = await LicenceOrder.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    headers = {**await csrf_headers(client, "/licences/orders"), **HTMX}
    for method, path in [
        ("GET", f"/licences/orders/{order['id']}/menu"),
        ("POST", f"/licences/orders/{order['id']}/assign"),
        ("POST", f"/licences/orders/{order['id']}/decline"),
        ("GET", f"/companies/{tree.other_customer['id']}/licences"),
        ("GET", f"/companies/{tree.other_customer['id']}/licences/select-all"),
        ("POST", f"/companies/{tree.other_customer['id']}/licences/allocate"),
        ("GET", f"/companies/{tree.other_customer['id']}/licences/orders/new"),
        ("POST", f"/companies/{tree.other_customer['id']}/licences/orders"),
        ("GET", f"/companies/{tree.other_customer['id']}/users/{learner['id']}"),
        ("POST", f"/companies/{tree.other_customer['id']}/users/{learner['id']}/deactivate"),
        ("POST", f"/companies/{tree.other_customer['id']}/licences/orders/{order['id']}/cancel"),
        # Own company in the URL, another tenant's order id after it.
        ("POST", f"/companies/{tree.north['id']}/licences/orders/{order['id']}/cancel"),
        # Own company in the URL, another tenant's user id after it.
        ("GET", f"/companies/{tree.north['id']}/users/{learner['id']}"),
    ]:
        response = await client.request(method, path, headers=headers, data={"reason": "x", "quantity": "1"})
        assert response.status_code == 404, (method, path, response.status_code)
    assert (await LicenceOrder.select().first())["status"] == "requested"
    assert "Other Customer" not in (await client.get("/licences/orders")).text


async def test_assign_and_decline_work_as_plain_forms(client, tree):
    """Without JavaScript: the row's menu is a page of its own with real forms,
    and their posts answer with a redirect and a message, or the page and why not."""
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 4)
    await request_licences(client, tree.north["id"], 6)
    first, second = await LicenceOrder.select().order_by(LicenceOrder.id)
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))

    listing = await client.get("/licences/orders")
    assert f'href="/licences/orders/{first["id"]}/menu"' in listing.text
    menu = f"/licences/orders/{first['id']}/menu"
    page = await client.get(menu)
    assert page.status_code == 200 and "<html" in page.text and "Order from North Customer" in page.text
    assert f'action="/licences/orders/{first["id"]}/assign"' in page.text and "hx-post" not in page.text

    asked = await post_form(client, menu, f"/licences/orders/{first['id']}/assign", {})
    assert asked.status_code == 200 and "<html" in asked.text and 'name="confirm" value="1"' in asked.text
    assert await LicenceBatch.count() == 0
    assigned = await post_form(client, menu, f"/licences/orders/{first['id']}/assign", CONFIRM)
    assert assigned.status_code in (302, 303) and assigned.headers["location"] == "/licences/orders"
    batch = await LicenceBatch.select().first()
    shown = await client.get("/licences/orders")
    premium = "Security Awareness Training — Premium"
    assert f"Assigned 4 × {premium} to North Customer, running until {batch['ends_at']:%d %b %Y}." in shown.text
    again = await post_form(client, menu, f"/licences/orders/{first['id']}/assign", CONFIRM)
    assert again.status_code == 409 and "already assigned" in again.text and "<html" in again.text
    assert await LicenceBatch.count() == 1

    other = f"/licences/orders/{second['id']}/menu"
    empty = await post_form(client, other, f"/licences/orders/{second['id']}/decline", {"reason": "  "})
    assert empty.status_code == 400 and "Say why" in empty.text and 'name="reason"' in empty.text
    assert (await LicenceOrder.select().where(LicenceOrder.id == second["id"]).first())["status"] == "requested"
    declined = await post_form(client, other, f"/licences/orders/{second['id']}/decline", {"reason": "Budget"})
    assert declined.headers["location"] == "/licences/orders"
    assert "Declined the order of 6 licenses from North Customer." in (await client.get("/licences/orders")).text


async def test_select_all_is_a_page_without_javascript(client, tree):
    for n in range(3):
        await add_user(tree.north, f"s{n}@north.example", role="learner")
    await seats_assigned(client, tree, 10)
    tab = await client.get(f"/companies/{tree.north['id']}/licences?tab=unlicensed")
    link = f"/companies/{tree.north['id']}/licences/select-all?tab=unlicensed&q="
    assert f'href="{link}"' in tab.text
    page = await client.get(link)
    assert page.status_code == 200 and "<html" in page.text
    assert 'data-testid="select-all-count">4<' in page.text  # the three learners and North's manager
    assert f'action="/companies/{tree.north["id"]}/licences/allocate"' in page.text
    # Cancel leads back to the list (a link), and only dismisses the box when shown in place.
    assert "data-dismiss" not in page.text
    fragment = await client.get(link, headers={**HTMX, "HX-Target": "select-all"})
    assert "<html" not in fragment.text and 'data-dismiss=".confirm"' in fragment.text


async def test_allocate_refuses_user_ids_that_are_not_the_companys_and_writes_nothing(client, tree):
    """Ticked ids come from the browser: another company's user, an id no one has or
    a value that is no id at all is refused with a message, and nothing is written:
    no seat, no audit entry "selected 0, renewed 0"."""
    own = await add_user(tree.north, "own@north.example", role="learner")
    foreign = await add_user(tree.direct, "them@direct.example", role="learner")
    elsewhere = await add_user(tree.other_customer, "them@other.example", role="learner")
    await seats_assigned(client, tree, 5)
    allocations = AuditEntry.action == "licences.allocate"
    page = f"/companies/{tree.north['id']}/licences?tab=unlicensed"
    action = f"/companies/{tree.north['id']}/licences/allocate"
    for ids in ([foreign["id"]], [elsewhere["id"]], [own["id"], foreign["id"]], [own["id"], 999_999], [own["id"], "x"]):
        refused = await post_form(client, page, action, {"user_id": [str(i) for i in ids], "tab": "unlicensed"})
        assert refused.status_code == 400, ids
        assert "Some of the selected users are not users of North Customer" in refused.text
        assert await Allocation.count() == 0 and await AuditEntry.count().where(allocations) == 0
    done = await post_form(client, page, action, {"user_id": [str(own["id"])], "tab": "unlicensed"})
    assert done.status_code == 302 and await Allocation.count() == 1
    assert await AuditEntry.count().where(allocations) == 1
