"""Numbers no decimal context holds on the partner's settings: a tax rate
like 1e30 or a 30-digit price is said beside its field, 400, nothing saved; never a 500."""

from __future__ import annotations

import pytest

from portal.tables.billing import BillingProfile, CatalogueItem
from tests.support import post_form, sign_in

RATE_ERRORS = ("Enter the tax rate in per cent, for example 8.25 (or 0).", "Enter a tax rate from 0 to 100 %.")
PRICE_ERRORS = ("Enter a price such as 6000.00.", "Enter a price from 0 to 100,000,000.00.")


@pytest.mark.parametrize("rate", ["1e30", "-1e30", "9" * 30, "1e-30", "NaN", "Infinity", "1e999999999", "101"])
async def test_a_tax_rate_out_of_any_range_is_said_on_the_form(client, tree, rate):
    await sign_in(client, tree.email("sub"))
    refused = await post_form(client, "/billing/settings", "/billing/settings", {"currency": "USD", "tax_rate": rate})
    assert refused.status_code == 400
    assert any(message in refused.text for message in RATE_ERRORS)
    row = (
        await BillingProfile.select(BillingProfile.tax_rate_bp).where(BillingProfile.company == tree.sub["id"]).first()
    )
    assert row is None or row["tax_rate_bp"] == 0


@pytest.mark.parametrize("price", ["9" * 30, "1e30", "1" + "0" * 25 + ".00", "1e-30", "-5", "sNaN"])
async def test_a_price_out_of_any_range_is_said_on_the_form(client, tree, price):
    await sign_in(client, tree.email("sub"))
    refused = await post_form(
        client,
        "/billing/settings",
        "/billing/catalogue",
        {"price.pro": price, "included_users.pro": "10", "active.pro": "yes"},
    )
    assert refused.status_code == 400
    assert any(message in refused.text for message in PRICE_ERRORS)
    pro = await CatalogueItem.select().where((CatalogueItem.partner == tree.sub["id"]) & (CatalogueItem.code == "pro"))
    assert [row["price_cents"] for row in pro] == [6_000_00]
