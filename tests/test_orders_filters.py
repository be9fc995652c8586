"""The Requested Orders filter spec: one definition read by the query string,
the WHERE clause and the filter bar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

import pytest

from portal.domain import catalogue
from portal.domain.access import load_actor
from portal.domain.orders import decisions, order_list, requests
from portal.domain.orders.order_list import ORDER_FILTERS, STATUSES
from tests.support import sign_in
from tests.test_licences_domain import actors
from tests.test_licences_web import HTMX, request_licences

# Signs the list cursors in these tests (the app derives its own from SECRET_KEY).
SECRET = b"test cursor key"


def test_a_query_string_reads_back_as_it_was_written():
    query = {"status": "requested", "customer": "7", "requested_from": "2026-01-31", "min_quantity": "10"}
    values = ORDER_FILTERS.parse(query)
    assert values == {"status": "requested", "customer": 7, "requested_from": date(2026, 1, 31), "min_quantity": 10}
    assert ORDER_FILTERS.as_query(values) == query


@pytest.mark.parametrize(
    "query",
    [
        {"status": "shipped"},
        {"customer": "north"},
        {"customer": str(2**31)},
        {"requested_to": "2026-02-30"},
        {"requested_from": "1066-10-14"},
        {"min_quantity": " "},
        {"unknown": "1"},
    ],
)
def test_a_malformed_or_unknown_value_is_no_filter(query):
    assert ORDER_FILTERS.parse(query) == {}


def test_filters_written_in_code_are_checked_by_name():
    with pytest.raises(TypeError, match="no such filter: colour"):
        ORDER_FILTERS.values(colour="red")


async def test_every_filter_renders_its_widget_and_keeps_its_value(client, tree):
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 4)
    await sign_in(client, tree.email("partner"))
    widgets = {"select": "<select", "date": 'type="date"', "number": 'type="number"'}
    for f in ORDER_FILTERS:
        field = await client.get(f"/licences/orders/filters/{f.name}", headers=HTMX)
        assert field.status_code == 200
        assert f">{f.label}" in field.text and f'name="{f.name}"' in field.text and widgets[f.widget] in field.text
    choices = await client.get("/licences/orders/filters/status", headers=HTMX)
    assert all(f'value="{s}"' in choices.text for s in STATUSES)

    query = {"customer": tree.north["id"], "status": "requested", "requested_to": "2100-01-01", "min_quantity": 4}
    page = await client.get("/licences/orders?" + urlencode(query))
    assert page.status_code == 200 and "1 order" in page.text
    assert f'<option value="{tree.north["id"]}" selected>' in page.text
    assert '<option value="requested" selected>' in page.text
    assert 'name="requested_to" value="2100-01-01"' in page.text and 'name="min_quantity" value="4"' in page.text
    # One more than the only order's quantity: none match.
    assert (await client.get("/licences/orders?" + urlencode({**query, "min_quantity": 5}))).text.count("1 order") == 0


async def test_each_filter_narrows_the_list_on_the_database(tree):
    """Every filter of the spec, its clause run by the engine: the days are whole
    UTC days, the requester and product are ids."""
    customer, partner = await actors(tree)
    direct = await load_actor(tree.managers["direct"]["id"], None)
    trial = await catalogue.product_by_code(catalogue.TRIAL)
    late_evening = datetime(2026, 1, 15, 23, 59, tzinfo=UTC)
    await requests.request_order(customer, tree.north["id"], 5, None, "", late_evening)
    await requests.request_order(customer, tree.north["id"], 6, trial["id"], "", late_evening + timedelta(minutes=2))
    await requests.request_order(direct, tree.direct["id"], 7, None, "", late_evening + timedelta(days=3))

    async def quantities(**values) -> list[int]:
        listing = await order_list.list_orders(partner, ORDER_FILTERS.values(**values), None, SECRET)
        return [o["quantity"] for o in listing.items]

    assert await quantities() == [7, 6, 5]
    assert await quantities(requested_to=date(2026, 1, 15)) == [5]
    assert await quantities(requested_from=date(2026, 1, 16), requested_to=date(2026, 1, 16)) == [6]
    assert await quantities(requested_from=date(2026, 1, 17)) == [7]
    assert await quantities(product=trial["id"]) == [6]
    assert await quantities(requested_by=tree.managers["direct"]["id"]) == [7]
    assert await quantities(customer=tree.north["id"], min_quantity=6) == [6]
    assert await quantities(status="requested", max_quantity=5) == [5]


async def test_the_filtered_list_downloads_whole_as_csv_safe_for_a_spreadsheet(client, tree):
    """Every matching order, more than a page of them, the filters of the screen,
    a PO number that would be a formula written as text; nothing of another wing."""
    import csv
    import io

    customer, partner = await actors(tree)
    other = await load_actor(tree.managers["other_customer"]["id"], None)
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    for n in range(30):
        await requests.request_order(customer, tree.north["id"], n + 1, None, "=HYPERLINK(1)" if n == 0 else "", now)
    await requests.request_order(other, tree.other_customer["id"], 99, None, "", now)
    await decisions.decline_order(
        partner, (await order_list.list_orders(partner, {}, None, SECRET)).items[0]["id"], "Too many", now
    )

    await sign_in(client, tree.email("partner"))
    page = await client.get("/licences/orders?status=requested")
    assert 'href="/licences/orders/export.csv?status=requested"' in page.text
    download = await client.get("/licences/orders/export.csv?status=requested&min_quantity=2")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Requested", "Customer", "License", "Quantity"]
    # 30 requested by North, one of them declined since, one below the minimum; Other's are not in the wing.
    assert sorted(int(r[3]) for r in rows[1:]) == list(range(2, 30))
    assert {r[1] for r in rows[1:]} == {"North Customer"} and {r[6] for r in rows[1:]} == {"Requested"}
    everything = list(csv.reader(io.StringIO((await client.get("/licences/orders/export.csv")).text.lstrip("\ufeff"))))
    assert [r[4] for r in everything[1:] if r[3] == "1"] == ["'=HYPERLINK(1)"]

    await sign_in(client, tree.email("north"))
    assert (await client.get("/licences/orders/export.csv")).status_code == 403
