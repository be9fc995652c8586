"""Keyboard only, in Chromium: on Requested Orders, Tab to a row's ⋯ menu, open
it, reach "Assign" with the arrow keys and press it, confirm, without the mouse;
the row says Assigned and the focus never leaves the row. Escape cancels Assign's
confirmation and closes Select All's box; what "Select users Manually" and "Select
All" bring up gets the focus; every page starts with "Skip to content"."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.live_server import LiveServer, new_page, sign_in

# Page markup and its script do not depend on the database: checked once, on the engine `make run` uses.
pytestmark = [pytest.mark.browser, pytest.mark.engine("sqlite")]

PARTNER = "alex.morgan@northwind-msp.example"
MAX_TABS = 80
CUSTOMER = "Harborview Hotel"  # no other browser test touches it
QUANTITY = 37
# Escape on Assign's confirmation: an order of its own, left requested.
CANCEL_CUSTOMER = "Summit Credit Union"
# Its demo batch of 8 has 2 seats free; only looked at (nothing allocated) here, and by no other browser test.
SEATS_CUSTOMER = "Peak Pharmacy"


async def place_order(live_server: LiveServer, customer: str = CUSTOMER, quantity: int = QUANTITY) -> None:
    """An order of this test's own, written into the server's database: the demo's
    requested orders belong to the other browser tests, which assign them."""
    company = await live_server.company_id(customer)
    sql = (
        "INSERT INTO licence_order (company, company_path, product, quantity, status, requested_at) "
        "SELECT {0}, '', id, {1}, 'requested', {2} FROM product WHERE code = 'sat-premium'"
    )
    now = datetime.now(UTC)
    if live_server.database_url.startswith("sqlite:///"):
        with sqlite3.connect(live_server.database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql.format(company, quantity, "?"), (now.isoformat(),))
        return
    conn = await asyncpg.connect(live_server.database_url)
    try:
        await conn.execute(sql.format(company, quantity, "$1"), now)
    finally:
        await conn.close()


async def focused(page: Page, selector: str) -> bool:
    return await page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector)


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
        await place_order(live_server)
        await sign_in(page, PARTNER)
        await page.goto("/licences/orders?status=requested")
        row = page.locator("#order-results tr[data-order]").filter(has_text=CUSTOMER).first
        await expect(row.locator(".status")).to_have_text("Requested")
        order_id = await row.get_attribute("data-order")

        await tab_until(page, f"#order-{order_id} summary")
        await page.keyboard.press("Enter")  # opens the <details> menu; its items load in place
        menu = page.locator(f"#order-{order_id} details.menu")
        await expect(menu).to_have_attribute("open", "")
        await expect(menu.get_by_role("button", name="Assign")).to_be_visible()
        # Loaded, and settled: htmx has made the form post in place (before that, Enter
        # posts it as a plain form, to the confirmation page that works without JavaScript).
        await expect(page.locator(f"#menu-{order_id}")).not_to_have_class(re.compile("htmx-settling"))
        await expect(menu.locator("form[action$='/assign']")).not_to_have_class(re.compile("htmx-added"))
        # Escape closes it and gives the focus back to the ⋯ button.
        await page.keyboard.press("Escape")
        await expect(menu).not_to_have_attribute("open", "")
        assert await focused(page, f"#order-{order_id} summary")
        # ArrowDown opens it again on its first item, "Assign"; the arrows move between the items.
        await page.keyboard.press("ArrowDown")
        await expect(menu).to_have_attribute("open", "")
        assert await focused(page, f"#order-{order_id} form[action$='/assign'] button")
        await page.keyboard.press("ArrowDown")
        assert await focused(page, f"#order-{order_id} input[name=reason]")
        await page.keyboard.press("ArrowUp")
        assert await focused(page, f"#order-{order_id} form[action$='/assign'] button")
        await page.keyboard.press("Enter")

        # The confirmation takes the row's place, its "Assign" focused and described by what it will do.
        asked = page.locator(f"#order-{order_id} [data-testid=assign-confirm]")
        await expect(asked).to_contain_text(f"Assign {QUANTITY} × Premium to {CUSTOMER}?")
        await expect(page.locator(f"#order-{order_id} button[aria-describedby]")).to_be_focused()
        await page.keyboard.press("Enter")

        await expect(page.locator(f"#order-{order_id} .status")).to_have_text("Assigned")
        await expect(page.locator(f"#order-{order_id} summary")).to_be_focused()
        await expect(page.locator("#order-live")).to_contain_text(f"Assigned {QUANTITY} × ")
    finally:
        await page.context.close()


async def test_escape_cancels_the_assign_confirmation(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    try:
        await place_order(live_server, CANCEL_CUSTOMER, 19)
        await sign_in(page, PARTNER)
        await page.goto("/licences/orders?status=requested")
        row = page.locator("#order-results tr[data-order]").filter(has_text=CANCEL_CUSTOMER).first
        order_id = await row.get_attribute("data-order")
        await tab_until(page, f"#order-{order_id} summary")
        await page.keyboard.press("Enter")
        # Loaded, and settled: htmx has made the form post in place.
        assign = page.locator(f"#order-{order_id} form[action$='/assign']")
        await expect(assign.get_by_role("button", name="Assign")).to_be_visible()
        await expect(page.locator(f"#menu-{order_id}")).not_to_have_class(re.compile("htmx-settling"))
        await expect(assign).not_to_have_class(re.compile("htmx-added"))
        await page.keyboard.press("ArrowDown")
        assert await focused(page, f"#order-{order_id} form[action$='/assign'] button")
        await page.keyboard.press("Enter")
        confirmation = page.locator(f"#order-{order_id} [data-testid=assign-confirm]")
        await expect(confirmation).to_contain_text(f"Assign 19 × Premium to {CANCEL_CUSTOMER}?")
        await expect(page.locator(f"#order-{order_id} button[aria-describedby]")).to_be_focused()

        await page.keyboard.press("Escape")
        await expect(confirmation).to_have_count(0)
        await expect(page.locator(f"#order-{order_id} .status")).to_have_text("Requested")
        await expect(page.locator(f"#order-{order_id} summary")).to_be_focused()
    finally:
        await page.context.close()


async def test_select_users_manually_and_select_all_take_the_focus_escape_closes(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, PARTNER)
        company = await live_server.company_id(SEATS_CUSTOMER)
        await page.goto(f"/companies/{company}/licences?tab=expired")

        # "Select users Manually" (an htmx swap of the tab): the focus goes to what appeared,
        # "Take seats from", not back to the top of the page.
        await tab_until(page, "[data-testid=select-manually]")
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("manual-allocation")).to_be_visible()
        await expect(page.get_by_label("Take seats from")).to_be_focused()
        # "Done selecting" gives it back to "Select users Manually".
        done = page.get_by_test_id("select-manually-done")
        await done.focus()
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("manual-allocation")).to_have_count(0)
        await expect(page.get_by_test_id("select-manually")).to_be_focused()

        # "Select All": the box's first control, then Escape closes it and the focus
        # goes back to the link that opened it.
        await tab_until(page, "[data-testid=select-all]")
        await page.keyboard.press("Enter")
        box = page.get_by_test_id("select-all-confirm")
        await expect(box.get_by_label("Take seats from")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(box).to_have_count(0)
        await expect(page.get_by_test_id("select-all")).to_be_focused()
    finally:
        await page.context.close()


async def test_skip_to_content_is_the_first_tab_stop(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, PARTNER)
        await page.goto("/companies")
        await page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        await expect(skip).to_be_focused()
        box = await skip.bounding_box()
        assert box and box["y"] >= 0 and box["width"] > 1, "the focused skip link is not on screen"
        await page.keyboard.press("Enter")
        assert await focused(page, "main")
        # The next Tab goes into the page's content, past the navigation.
        await page.keyboard.press("Tab")
        first = "main :is(a[href], button, input:not([type=hidden]), select, summary, textarea)"
        assert await page.evaluate(f"document.activeElement === document.querySelector({first!r})")
    finally:
        await page.context.close()
