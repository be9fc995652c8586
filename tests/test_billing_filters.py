"""One "Add Filter" field for every list with a filter spec (partials/_filter_field.html):
Requested Orders and the partner's billing lists draw a filter of the same kind alike,
whether it comes with the page or is added by "Add Filter"; the billing bar's
"Add Filter" buttons behave as Requested Orders' (no URL pushed, never added twice)."""

from __future__ import annotations

import re

from tests.support import sign_in
from tests.test_billing_web import HTMX, buy_pro_online

_OPTIONS = re.compile(r"<option [^>]*>[^<]*</option>")


def _field(html: str, name: str) -> str:
    """The filter's chip, its choices left out (each list offers its own)."""
    found = re.search(rf'<span class="filter" data-filter="{name}">.*?</span>', html, re.S)
    assert found, html[:3000]
    return " ".join(_OPTIONS.sub("", found.group(0)).split())


async def test_orders_and_billing_draw_a_filter_of_one_kind_alike(client, tree):
    await buy_pro_online(client, tree)
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))

    orders = await client.get("/licences/orders/filters/customer", headers=HTMX)
    subscriptions = await client.get("/billing/filters/customer", headers=HTMX)
    invoices = await client.get("/billing/invoices/filters/customer", headers=HTMX)
    assert (orders.status_code, subscriptions.status_code, invoices.status_code) == (200, 200, 200)
    expected = (
        '<span class="filter" data-filter="customer"> <label>Customer <select name="customer"></select> </label> '
        '<button type="button" class="link" aria-label="Remove filter Customer" data-remove-filter>×</button> </span>'
    )
    assert _field(orders.text, "customer") == _field(subscriptions.text, "customer") == expected
    assert _field(invoices.text, "customer") == expected
    assert f'<option value="{tree.north["id"]}" >North Customer</option>' in subscriptions.text

    # Drawn with the page, with its value chosen: the same chip.
    page = await client.get("/billing", params={"customer": tree.north["id"]})
    assert page.status_code == 200
    assert _field(page.text, "customer") == expected
    assert f'<option value="{tree.north["id"]}" selected>North Customer</option>' in page.text


async def test_the_billing_add_filter_buttons_push_no_url_and_add_a_filter_once(client, tree):
    await sign_in(client, tree.email("partner"))
    for path, names in (
        ("/billing", ("customer", "status", "method", "renews_before", "failed_charges")),
        ("/billing/invoices", ("status", "customer", "kind")),
    ):
        page = await client.get(path)
        assert page.status_code == 200
        for name in names:
            assert (
                f'hx-get="{path}/filters/{name}" hx-target="#filter-fields" hx-swap="beforeend" '
                f'hx-push-url="false" data-close-menu data-add-filter="{name}">'
            ) in page.text, name
