"""Keyboard only, in Chromium: on Requested Orders, Tab to a row's ⋯ menu, open
it, reach "Assign" and press it, without the mouse; the row says Assigned."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.live_server import LiveServer, new_page, sign_in

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
MAX_TABS = 80


async def tab_until(page: Page, selector: str) -> None:
    """Press Tab until the focused element matches `selector` (as a person would)."""
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        if await page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} not reached within {MAX_TABS} presses of Tab")


async def test_assign_from_the_row_menu_by_keyboard(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, PARTNER)
        await page.goto("/licences/orders?status=requested")
        # Not Brightpath Dental's: tests/test_browser_licences.py expects its only batch of today to be its own.
        row = page.locator("#order-results tr[data-order]").filter(has_not_text="Brightpath Dental").first
        await expect(row.locator(".status")).to_have_text("Requested")
        order_id = await row.get_attribute("data-order")

        await tab_until(page, f"#order-{order_id} summary")
        await page.keyboard.press("Enter")  # opens the <details> menu; its items load in place
        menu = page.locator(f"#order-{order_id} details.menu")
        await expect(menu).to_have_attribute("open", "")
        await expect(menu.get_by_role("button", name="Assign")).to_be_visible()
        await tab_until(page, f"#order-{order_id} form[action$='/assign'] button")
        await page.keyboard.press("Enter")

        await expect(page.locator(f"#order-{order_id} .status")).to_have_text("Assigned")
    finally:
        await page.context.close()
