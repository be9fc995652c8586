"""The Requested Orders filter spec: one definition read by the query string,
the WHERE clause and the filter bar."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

import pytest

from portal.domain.orders import ORDER_FILTERS, STATUSES
from tests.support import sign_in
from tests.test_licences_web import HTMX, request_licences


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
