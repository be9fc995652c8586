""" "Renew same quantity" in Chromium against `portal serve` with the demo data:
Admin Dashboard → "Ending in the next 30 days" → a customer whose 2 of 2 seats
end in 2 days → Renew same quantity → "Place and assign the order". The page
says the renewal starts when the batch ends, its end and how many users move;
afterwards the two holders run to the new end and nobody is expiring. With
JavaScript (axe-core, and the confirmation at 390 px) and without it.

Customers whose batches no other browser test changes: Granite Builders (with
JavaScript; tests/test_phone_lists.py leaves an unpaid purchase there) and Riverside
Clinic (without; tests/test_browser_seats_unused.py adds batches of its own there)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, sign_in
from tests.test_accessibility import PHONE, axe_violations, report

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
DAY = r"\d\d \w{3} \d{4}"


async def renew_from_the_dashboard(page: Page, customer: str, check_page=None) -> tuple[str, str]:
    """Dashboard → the customer's batch ending soon → Renew same quantity → assign.
    Returns the new batch's start and end as the confirmation said them."""
    await page.goto("/dashboard")
    item = page.get_by_test_id("ending-soon").locator("li").filter(has_text=customer)
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("2 of 2 seats end in 2 days")
    await item.get_by_role("link", name=re.compile("^Renew same quantity")).click()

    await expect(page.get_by_role("heading", name="Renew same quantity")).to_be_visible()
    term = page.get_by_test_id("renew-term")
    said = re.search(
        rf"starts when the renewed batch ends, on ({DAY}), ends ({DAY}), 2 users move", await term.inner_text()
    )
    assert said, await term.inner_text()
    starts, ends = said.group(1), said.group(2)
    await expect(page.get_by_test_id("renew-moving")).to_have_text("2")
    if check_page:
        await check_page(page)
    await page.get_by_role("button", name="Place and assign the order").click()

    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_test_id("flash")).to_contain_text(
        f"for {customer}, assigned, starting when the renewed batch ends, on {starts}, ending {ends}; "
        "2 users moved to it."
    )
    item = page.get_by_test_id("ending-soon").locator("li").filter(has_text=customer)
    await expect(item).to_contain_text(re.compile(rf"Renewed {DAY}, until {ends}"))
    await expect(item.get_by_role("link", name=re.compile("^Renew same quantity"))).to_have_count(0)
    return starts, ends


async def assert_holders_run_to(page: Page, live_server: LiveServer, customer: str, ends: str) -> None:
    """The customer's Active tab: its two holders active until the new end, nobody expiring
    (other users may hold seats of other batches: tests/test_browser_seats_unused.py
    allocates some at Riverside Clinic)."""
    company = await live_server.company_id(customer)
    await page.goto(f"/companies/{company}/licences?tab=active")
    rows = page.locator("#licence-tab table.list tbody tr")
    holders = rows.filter(has_text=ends)
    await expect(holders).to_have_count(2)
    await expect(holders.locator(".status.active")).to_have_count(2)
    await expect(rows.locator(".status.expiring")).to_have_count(0)
    # The new batch, listed before it starts: its start, not "Ended".
    await expect(page.get_by_test_id("batches").locator("tr").filter(has_text=ends)).to_contain_text("Starts ")


async def test_renew_same_quantity_keeps_the_users(browser: Browser, live_server: LiveServer):
    context = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = await context.new_page()

    async def accessible_and_fits_a_phone(page: Page) -> None:
        violations = await axe_violations(page)
        assert not violations, report({page.url: violations})
        await page.set_viewport_size(PHONE)
        widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"scrollWidth > innerWidth at 390 px: {widths}"

    try:
        await sign_in(page, PARTNER)
        _, ends = await renew_from_the_dashboard(page, "Granite Builders", accessible_and_fits_a_phone)
        violations = await axe_violations(page)
        assert not violations, report({"/dashboard (after)": violations})
        await assert_holders_run_to(page, live_server, "Granite Builders", ends)
    finally:
        await context.close()


async def test_renew_same_quantity_without_javascript(browser: Browser, live_server: LiveServer):
    context = await browser.new_context(base_url=live_server.url, java_script_enabled=False, viewport=PHONE)
    page = await context.new_page()
    try:
        await sign_in(page, PARTNER)
        _, ends = await renew_from_the_dashboard(page, "Riverside Clinic")
        await assert_holders_run_to(page, live_server, "Riverside Clinic", ends)
    finally:
        await context.close()
