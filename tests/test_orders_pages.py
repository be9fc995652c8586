"""Request Licenses, the Assign confirmation and Requested Orders through HTTP:
what each says before it acts, and that asking writes nothing."""

from __future__ import annotations

import re

from portal.domain import partner_settings
from portal.domain.catalogue import PREMIUM, product_by_code
from portal.domain.orders import decisions, requests
from portal.tables import LicenceBatch, LicenceOrder
from tests.factories import T0
from tests.support import csrf_headers, csrf_of, post_form, sign_in
from tests.test_licences_domain import actors, learners
from tests.test_licences_web import CONFIRM, HTMX, request_licences, row_htmx


async def test_request_licenses_shows_what_is_held_and_suggests_the_gap(client, tree):
    await learners(tree.north, 6)  # and the manager: seven unlicensed, no seats
    await sign_in(client, tree.email("north"))
    page = await client.get(f"/companies/{tree.north['id']}/licences/orders/new")
    assert page.status_code == 200
    assert 'data-testid="free-seats">0<' in page.text and 'data-testid="waiting-users">7<' in page.text
    assert re.search(r'name="quantity" min="1" max="10000" value="7"', page.text)
    assert "Suggested: 7, the 7 users waiting less the 0 free seats already held." in page.text


async def test_a_likely_slip_is_warned_and_sent_only_by_request_anyway(client, tree):
    await sign_in(client, tree.email("north"))
    first = await request_licences(client, tree.north["id"], 5, confirm=False)  # nothing to warn about
    assert first.status_code in (302, 303) and await LicenceOrder.count() == 1

    warned = await request_licences(client, tree.north["id"], 8, po="PO-8", confirm=False)
    assert warned.status_code == 200 and 'data-testid="request-warning"' in warned.text
    assert "North Customer already has a request waiting for its account managers: 5 licenses, requested" in warned.text
    assert await LicenceOrder.count() == 1  # nothing written
    form = re.search(r'<div class="alert warn".*?</form>', warned.text, re.S).group(0)
    premium = await product_by_code(PREMIUM)
    for name, value in (("quantity", "8"), ("po_number", "PO-8"), ("product_id", str(premium["id"])), ("confirm", "1")):
        assert f'name="{name}" value="{value}"' in form, name
    assert ">Request anyway</button>" in form

    anyway = await client.post(
        f"/companies/{tree.north['id']}/licences/orders",
        data={"_csrf_token": csrf_of(warned.text), "quantity": "8", "po_number": "PO-8", "confirm": "1"},
    )
    assert anyway.status_code in (302, 303)
    assert [o["quantity"] for o in await LicenceOrder.select().order_by(LicenceOrder.id)] == [5, 8]


async def test_a_quantity_above_the_partners_limit_is_refused_where_it_was_typed(client, tree):
    _, partner = await actors(tree)
    await partner_settings.save(partner, tree.partner["id"], max_order_quantity=100, low_seat_threshold=0, now=T0)
    await sign_in(client, tree.email("north"))
    refused = await request_licences(client, tree.north["id"], 101)
    assert refused.status_code == 400 and 'aria-invalid="true"' in refused.text
    assert "At most 100 licenses in one order: the largest order your account managers accept." in refused.text
    assert 'value="101"' in refused.text and await LicenceOrder.count() == 0


async def test_assign_asks_with_customer_quantity_product_and_end_date(client, tree):
    customer, _ = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], 12, None, "", T0)
    await sign_in(client, tree.email("partner"))
    headers = {**await csrf_headers(client, "/licences/orders"), **row_htmx(order["id"])}

    asked = await client.post(f"/licences/orders/{order['id']}/assign", headers=headers)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", asked.text))
    ends = re.search(r"run until (\d\d \w{3} \d{4}), 12 months from now", text).group(1)
    assert "Assign 12 × Premium to North Customer?" in text
    assert f'<tr id="order-{order["id"]}"' in asked.text and 'name="confirm" value="1"' in asked.text
    assert "data-autofocus" in asked.text and await LicenceBatch.count() == 0

    cancel = await client.get(f"/licences/orders/{order['id']}/menu", headers=row_htmx(order["id"]))
    assert (
        f'<tr id="order-{order["id"]}"' in cancel.text and ">Requested<" in cancel.text and "<html" not in cancel.text
    )

    done = await client.post(f"/licences/orders/{order['id']}/assign", data=CONFIRM, headers=headers)
    batch = await LicenceBatch.select().first()
    assert f"{batch['ends_at']:%d %b %Y}" == ends
    assert (
        f'data-announce="Assigned 12 × Security Awareness Training — Premium to North Customer, running until {ends}."'
        in done.text
    )
    second = await client.post(f"/licences/orders/{order['id']}/assign", data=CONFIRM, headers=headers)
    assert (
        "This order is already assigned; it cannot be assigned." in second.text and "data-announce" not in second.text
    )
    assert await LicenceBatch.count() == 1
    late = await client.post(f"/licences/orders/{order['id']}/assign", headers=headers)  # asked after it was assigned
    assert "already assigned" in late.text and "assign-confirm" not in late.text


async def test_assign_confirmation_is_a_page_without_javascript(client, tree):
    customer, _ = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], 3, None, "", T0)
    await sign_in(client, tree.email("partner"))
    menu = f"/licences/orders/{order['id']}/menu"
    asked = await post_form(client, menu, f"/licences/orders/{order['id']}/assign", {})
    assert asked.status_code == 200 and "<html" in asked.text and "Assign this order?" in asked.text
    assert "<dt>Customer</dt><dd>North Customer</dd>" in asked.text and "<dt>Quantity</dt><dd>3</dd>" in asked.text
    assert "<dt>License</dt><dd>Security Awareness Training — Premium</dd>" in asked.text
    assert "hx-post" not in asked.text and await LicenceBatch.count() == 0
    done = await client.post(
        f"/licences/orders/{order['id']}/assign", data={"_csrf_token": csrf_of(asked.text), **CONFIRM}
    )
    assert done.status_code in (302, 303) and done.headers["location"] == "/licences/orders"
    assert await LicenceBatch.count() == 1


async def test_requested_orders_open_on_requested_with_a_chip_and_short_names(client, tree):
    customer, partner = await actors(tree)
    declined = await requests.request_order(customer, tree.north["id"], 4, None, "", T0)
    await requests.request_order(customer, tree.north["id"], 9, None, "", T0)
    await decisions.decline_order(partner, declined["id"], "No budget", T0)
    await sign_in(client, tree.email("partner"))

    page = await client.get("/licences/orders")
    assert 'data-testid="order-count">1 order' in page.text
    assert '<option value="requested" selected>' in page.text and 'data-cleared-value="any"' in page.text
    assert '<option value="any">Any</option>' in page.text
    assert "<td>Premium</td>" in page.text and "Security Awareness Training — Premium" not in page.text
    assert '<td class="nowrap">15 Jan 2026 09:00 UTC</td>' in page.text
    assert 'href="/licences/orders/export.csv?status=requested"' in page.text

    every = await client.get("/licences/orders?status=any")
    assert 'data-testid="order-count">2 orders' in every.text
    assert '<input type="hidden" name="status" value="any" data-filter-cleared="status">' in every.text
    assert 'data-filter="status"' not in every.text  # no chip: every status
    fragment = await client.get("/licences/orders?status=any", headers={**HTMX, "HX-Target": "order-results"})
    assert "<html" not in fragment.text and "2 orders" in fragment.text
    download = await client.get("/licences/orders/export.csv?status=any")
    assert len(download.text.strip().splitlines()) == 3  # the header and both orders
