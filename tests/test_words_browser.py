"""The guides' path through the company page, and words as Chromium lays them out."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.live_server import LiveServer, new_page, sign_in

# Page markup and its script do not depend on the database: checked once, on the engine `make run` uses.
pytestmark = [pytest.mark.browser, pytest.mark.engine("sqlite")]

PARTNER = "alex.morgan@northwind-msp.example"
# Another partner, whose customers no other browser test enters: the audit log they read stays theirs.
HARBOR = "priya.shah@harbor-it.example"


@pytest.fixture
async def page(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    yield page
    await page.context.close()


async def test_company_page_actions_manage_company_enters_manage_mode(page: Page, live_server: LiveServer):
    # The guides' steps: Company → select the customer → Actions → Manage Company.
    await sign_in(page, HARBOR)
    await page.get_by_role("navigation").get_by_role("link", name="Company").click()
    await page.locator("#company-results").get_by_role("link", name="Harborview Hotel", exact=True).click()
    await expect(page.get_by_role("heading", name="Harborview Hotel", level=1)).to_be_visible()

    await page.locator("main details.menu").get_by_text("Actions").click()
    await page.get_by_role("button", name="Manage Company").click()
    banner = page.get_by_test_id("manage-banner")
    await expect(banner).to_contain_text("Managing Harborview Hotel")
    harborview = await live_server.company_id("Harborview Hotel")
    await expect(page).to_have_url(f"{live_server.url}/companies/{harborview}")
    # Inside manage mode the page is the customer's own: no menu to enter it again.
    await expect(page.get_by_role("button", name="Manage Company")).to_have_count(0)
    await banner.get_by_role("button", name="Exit").click()
    await expect(banner).to_have_count(0)


async def test_dashboard_customer_link_lands_where_actions_manage_company_is(page: Page, live_server: LiveServer):
    await sign_in(page, HARBOR)
    await page.get_by_test_id("customer-figures").get_by_role("link", name="Harborview Hotel").click()
    await expect(page.get_by_role("heading", name="Harborview Hotel", level=1)).to_be_visible()
    await page.locator("main details.menu").get_by_text("Actions").click()
    await page.get_by_role("button", name="Manage Company").click()
    await expect(page.get_by_test_id("manage-banner")).to_contain_text("Managing Harborview Hotel")


async def test_ending_soon_puts_the_colon_right_after_the_customer(page: Page, live_server: LiveServer):
    await sign_in(page, PARTNER)
    items = page.get_by_test_id("ending-soon").locator("li")
    await expect(items.first).to_be_visible()
    for text in await items.all_inner_texts():
        # The list lays its parts out with a gap between them: a colon on its own sat a gap away from the name.
        assert not re.search(r"\s:", text), text
