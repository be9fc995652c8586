"""Buying with Stripe Elements in Chromium: `portal serve` with PAYMENT_PROCESSOR=stripe
against the run's localstripe, whose stand-in for Stripe.js (served at
/js.stripe.com/v3/) draws the card fields and confirms the SetupIntent with the fake
API, as Stripe.js does with Stripe's. The card goes from the browser to the fake
Stripe; the portal receives the PaymentMethod's id, keeps it, and charges it
off-session. Both engines."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.async_api import Browser, expect

from tests.live_server import new_page, serving, sign_in
from tests.stripe_server import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET
from tests.test_billing_browser import PRO_20_TOTAL, flash, nav_link
from tests.test_billing_forms_carry_no_card import CARD_NAME, card_numbers_in

pytestmark = pytest.mark.browser

# A demo customer, in this server's own database.
CUSTOMER_MANAGER = "manager@copperleaf-accounting.example"


@pytest.fixture(scope="module")
async def stripe_server(localstripe):
    env = {
        "PAYMENT_PROCESSOR": "stripe",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": localstripe.url,
    }
    async with serving(env) as server:
        yield server


async def test_a_customer_buys_online_with_elements(browser: Browser, stripe_server, localstripe):
    page = await new_page(browser, stripe_server)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # Every request the browser makes to the portal, from signing in to the flash: its
    # query and body, read as a billing route would (tests/test_billing_forms_carry_no_card.py).
    to_portal: list[tuple[str, str]] = []
    page.on(
        "request",
        lambda r: to_portal.append((r.url, r.post_data or "")) if r.url.startswith(stripe_server.url) else None,
    )
    try:
        await sign_in(page, CUSTOMER_MANAGER)
        await nav_link(page, "Billing").click()
        await page.get_by_role("link", name="Buy a license").first.click()
        await page.get_by_role("radio", name=re.compile(r"^Pro: ")).check()
        await page.get_by_label(re.compile(r"^Extra standard users")).fill("20")
        await page.get_by_role("radio", name=re.compile(r"^Pay Online")).check()
        await page.get_by_role("button", name="See the price").click()
        quote = page.get_by_test_id("quote")
        await expect(quote.get_by_test_id("total")).to_have_text(PRO_20_TOTAL)

        # Elements (localstripe's stand-in) draws the card fields; none is the portal's form field.
        element = quote.get_by_test_id("card-element")
        await element.get_by_placeholder("number").fill("4242424242424242")
        await element.get_by_placeholder("exp_month").fill("12")
        await element.get_by_placeholder("exp_year").fill("40")
        await element.get_by_placeholder("cvc").fill("123")
        await element.get_by_placeholder("postal_code").fill("BS1 4QS")
        assert (
            await quote.locator("input[name]").evaluate_all(
                "inputs => inputs.filter(i => i.closest('[data-card-element]')).length"
            )
            == 0
        )
        await page.get_by_label("Billing name").fill("Harbourview Clinic Ltd")
        await page.get_by_label("Billing e-mail").fill("accounts@harbourview-clinic.example")
        await page.get_by_label("Address").fill("9 Harbour Walk\nPlymouth")
        await page.get_by_label("Country").select_option("GB")

        posted: list[str] = []
        page.on("request", lambda r: posted.append(r.post_data or "") if r.method == "POST" else None)
        await quote.get_by_role("button", name="Pay Online").click()
        await expect(flash(page)).to_contain_text(f"Paid {PRO_20_TOTAL} by card")
        await expect(page.get_by_test_id("seats")).to_contain_text("30")
        # What went to the portal carried a PaymentMethod id, never the card.
        portal_posts = [p for p in posted if "_csrf_token" in p]
        assert portal_posts and all("4242424242424242" not in p for p in portal_posts)
        assert any("payment_method=pm_" in p for p in portal_posts)
        sent = [
            (url, name, value)
            for url, body in to_portal
            for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
            + parse_qsl(body, keep_blank_values=True)
        ]
        assert any(name == "payment_method" for _, name, _ in sent)
        assert [(u, n) for u, n, v in sent if CARD_NAME.search(n) or card_numbers_in(v)] == []
    finally:
        await page.context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
