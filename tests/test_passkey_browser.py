"""Passkeys in Chromium, with the DevTools protocol's virtual authenticator
standing in for a phone or security key: a manager adds a passkey from Profile,
signs out, and signs in with it and no password; another browser signs in with
the password and uses the passkey as the second factor. The portal runs at
http://localhost (a passkey belongs to a domain name, never to an address)."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.live_server import serving
from tests.test_accessibility import axe_violations

pytestmark = pytest.mark.browser

MANAGER = "manager@riverside-clinic.example"
DEMO_PASSWORD = "licences-demo"


async def _authenticator(context: BrowserContext, page: Page) -> None:
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )


async def _password(page: Page) -> None:
    await page.goto("/login")
    await page.get_by_label("E-mail").fill(MANAGER)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.keyboard.press("Enter")


async def test_a_manager_adds_a_passkey_and_signs_in_with_it(browser):
    async with serving(host="localhost") as server:
        context = await browser.new_context(base_url=server.url, viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await _authenticator(context, page)
        try:
            await _password(page)
            await expect(page.get_by_role("heading", name="Riverside Clinic")).to_be_visible()
            await page.goto("/profile")
            await page.get_by_role("link", name="Add a passkey").click()
            await expect(page.get_by_role("heading", name="Add a passkey")).to_be_visible()
            assert await axe_violations(page) == []
            await page.get_by_label("Name it").fill("Work laptop")
            await page.get_by_role("button", name="Add a passkey").click()
            await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
            await page.get_by_role("link", name="I have kept them: continue").click()
            await expect(page.get_by_test_id("passkeys")).to_contain_text("Work laptop")

            await page.get_by_role("button", name="Sign out").first.click()
            await page.goto("/login")
            await page.get_by_role("link", name="Sign in with a passkey").click()
            await expect(page.get_by_role("heading", name="Sign in with a passkey")).to_be_visible()
            assert await axe_violations(page) == []
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            await page.get_by_role("button", name="Use a passkey").click()
            await expect(page.get_by_role("heading", name="Riverside Clinic")).to_be_visible()
            await page.goto("/profile")
            await expect(page.get_by_test_id("passkeys")).to_contain_text("last used")

            # The same manager with the password: the passkey is the second factor.
            await page.get_by_role("button", name="Sign out").first.click()
            await _password(page)
            await expect(page.get_by_role("heading", name="Second factor")).to_be_visible()
            assert await axe_violations(page) == []
            await page.get_by_role("button", name="Use a passkey instead").click()
            await expect(page.get_by_role("heading", name="Riverside Clinic")).to_be_visible()
        finally:
            await context.close()
