"""Chromium, 390 px wide: a partner manager sets up single sign-on (Test
connection, then Save) against a real OpenID Connect provider on loopback,
signs out, and signs in again with the e-mail alone: the portal sends the
browser to the provider, the provider signs them in and sends them back.
The portal runs on a server of its own (its partner's staff sign in differently
afterwards), allowed to reach a provider on loopback."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from portal.demo_data import DEMO_PASSWORD
from tests.live_server import serving
from tests.oidc_provider import start_provider
from tests.test_accessibility import axe_violations

pytestmark = pytest.mark.browser

MANAGER = "alex.morgan@northwind-msp.example"


async def _checked(page: Page) -> None:
    assert await axe_violations(page) == [], page.url
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390, page.url


async def test_a_partner_sets_up_sso_and_its_manager_signs_in_through_the_provider(browser):
    provider = start_provider()
    try:
        async with serving({"WEBHOOKS_TO_PRIVATE_ADDRESSES": "1"}) as server:
            context = await browser.new_context(base_url=server.url, viewport={"width": 390, "height": 844})
            # The provider's page takes its stylesheet from a CDN this machine cannot reach.
            await context.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
            page = await context.new_page()
            await page.goto("/login")
            await page.get_by_label("E-mail").fill(MANAGER)
            await page.get_by_label("Password").fill(DEMO_PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("button", name="Sign out")).to_be_visible()

            await page.goto("/settings/sign-in")
            await page.get_by_role("link", name="Set up single sign-on").click()
            await expect(page.get_by_role("heading", name="Single sign-on", exact=True)).to_be_visible()
            await expect(page.get_by_test_id("sso-callback")).to_have_text(f"{server.url}/sso/callback")
            await _checked(page)
            await page.get_by_label("Issuer").fill(provider.issuer)
            await page.get_by_label("Client ID").fill("portal-client")
            await page.get_by_label("Client secret").fill("s3cret")
            await page.get_by_label("E-mail domains").fill("northwind-msp.example")
            await page.get_by_test_id("sso-test").click()
            await expect(page.get_by_test_id("sso-test-result")).to_contain_text(f"issuer {provider.issuer}")
            await expect(page.get_by_test_id("sso-test-result")).to_contain_text("Nothing was saved")
            # Test connection keeps what was typed, but never the secret.
            await expect(page.get_by_label("Issuer")).to_have_value(provider.issuer)
            await page.get_by_label("Client ID").fill("portal-client")
            await page.get_by_label("Client secret").fill("s3cret")
            await page.get_by_label("E-mail domains").fill("northwind-msp.example")
            await page.get_by_role("button", name="Save").click()
            await expect(page.get_by_text("Single sign-on is saved")).to_be_visible()
            await _checked(page)
            await page.get_by_role("button", name="Sign out").click()

            await page.goto("/login")
            await page.get_by_label("E-mail").fill(MANAGER)
            await page.get_by_role("button", name="Sign in").click()
            # The portal's page moves on to the provider by itself.
            await page.wait_for_url(f"{provider.issuer}/oauth2/authorize**")
            await page.get_by_placeholder("sub").fill(MANAGER)
            await page.get_by_role("button", name="Authorize").click()
            await page.wait_for_url(f"{server.url}/dashboard")
            await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            await page.goto("/profile")
            await expect(page.get_by_text(MANAGER).first).to_be_visible()
            await context.close()
    finally:
        provider.stop()
