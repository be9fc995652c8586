"""Chromium, 390 px wide, keyboard for the codes: a manager turns on an
authenticator app from Profile (scanning is replaced by the key shown as text),
keeps the recovery codes, signs out, and signs in with the password and a code.
Every page on the way has no axe violation and no sideways scroll. Uses a demo
manager no other browser test signs in as."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from playwright.async_api import Page, expect

from tests.live_server import LiveServer
from tests.test_accessibility import axe_violations

pytestmark = pytest.mark.browser

MANAGER = "manager@peak-pharmacy.example"
DEMO_PASSWORD = "licences-demo"


async def _checked(page: Page) -> None:
    assert await axe_violations(page) == [], page.url
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390, page.url


async def test_a_manager_enrols_an_authenticator_app_and_signs_in_with_a_code(browser, live_server: LiveServer):
    context = await browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = await context.new_page()
    try:
        await page.goto("/login")
        await page.get_by_label("E-mail").fill(MANAGER)
        await page.get_by_label("Password").fill(DEMO_PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Peak Pharmacy")).to_be_visible()

        await page.goto("/profile")
        await expect(page.get_by_test_id("authenticator-status")).to_contain_text("off")
        await page.get_by_role("link", name="Set up an authenticator app").click()
        await expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
        await expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
        await _checked(page)
        secret = (await page.get_by_test_id("totp-secret").inner_text()).replace(" ", "")
        totp = pyotp.TOTP(secret)

        code = page.get_by_label("Code from the app")
        await expect(code).to_be_focused()
        await page.keyboard.type("000000" if totp.now() != "000000" else "111111")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("alert")).to_contain_text("does not match")
        await page.get_by_label("Code from the app").fill("")
        await page.get_by_label("Code from the app").focus()
        await page.keyboard.type(totp.now())
        await page.keyboard.press("Enter")

        await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
        await expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
        await _checked(page)
        await page.get_by_role("link", name="I have kept them: continue").click()
        await expect(page.get_by_test_id("authenticator-status")).to_contain_text("on")

        await page.get_by_role("button", name="Sign out").first.click()
        await page.goto("/login")
        await page.get_by_label("E-mail").fill(MANAGER)
        await page.get_by_label("Password").fill(DEMO_PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Second factor")).to_be_visible()
        await _checked(page)
        await expect(page.get_by_label("Code")).to_be_focused()
        # The code of the next step: the enrolment used this step's, and each is accepted once.
        await page.keyboard.type(totp.at(datetime.now(UTC) + timedelta(seconds=30)))
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Peak Pharmacy")).to_be_visible()

        await page.goto("/profile")
        await expect(page.get_by_test_id("session-row")).to_have_count(1)
        await _checked(page)
    finally:
        await context.close()
