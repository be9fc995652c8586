"""Seats paid for and not used, in Chromium on a phone (390 px): the Admin Dashboard
flags a customer with free seats while users wait, in words; its "Allocate now"
enters Manage Company and lands on Select All with the batch that fits everyone
chosen; the customer's own summary says the same; Allocate Licenses renews them.
No axe-core violation and no sideways scroll on the pages it crosses.

Riverside Clinic is this module's own (the other browser tests only enter and exit
it): the demo leaves it 11 expired, 8 unlicensed and no free seat; the test gives it
a running batch of 5 and one of 20, which end on the same day."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, new_page, sign_in
from tests.test_accessibility import PHONE, axe_violations, report
from tests.test_browser_licences import add_running_batch, day, moment, query
from tests.test_phone_lists import cut_off

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
COMPANY = "Riverside Clinic"
SCREENSHOT = "/tmp/seats-unused.png"


async def no_axe_violation_nor_sideways_scroll(page: Page) -> None:
    await page.wait_for_load_state("networkidle")  # the summary loads itself
    found = await axe_violations(page)
    assert not found, report({page.url: found})
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], (page.url, widths)


async def test_allocate_now_from_the_admin_dashboard_lands_on_select_all_with_the_batch_and_allocates(
    browser: Browser, live_server: LiveServer
):
    company = await live_server.company_id(COMPANY)
    await add_running_batch(live_server, company, 5)
    await add_running_batch(live_server, company, 20)
    now = datetime.now(UTC)
    running = [
        (i, seats, moment(s), moment(e))
        for i, seats, used, s, e in await query(
            live_server,
            f"SELECT id, seats, allocated, starts_at, ends_at FROM licence_batch WHERE company = {company} "
            "AND allocated < seats ORDER BY ends_at, id",
        )
        if moment(s) <= now < moment(e)
    ]
    assert [seats for _, seats, _, _ in running] == [5, 20], running
    big_id, _, big_starts, big_ends = running[1]

    page = await new_page(browser, live_server)
    try:
        await page.set_viewport_size(PHONE)
        await sign_in(page, PARTNER)
        await page.goto("/dashboard")
        row = page.locator(f"table.dash tbody tr[data-customer='{COMPANY}']")
        # A word, not a colour alone, and the action beside it.
        await expect(row.get_by_test_id("seats-unused")).to_contain_text("Seats unused: 25 free, 19 waiting")
        allocate_now = row.get_by_role("button", name=re.compile(r"^Allocate now"))
        await expect(allocate_now).to_be_visible()
        assert not await cut_off(page, f"table.dash tbody tr[data-customer='{COMPANY}']")
        await row.screenshot(path=SCREENSHOT)
        await no_axe_violation_nor_sideways_scroll(page)

        await allocate_now.click()
        await expect(page).to_have_url(re.compile(rf"/companies/{company}/licences/select-all\?tab=expired$"))
        await expect(page.get_by_test_id("manage-banner")).to_contain_text(COMPANY)
        confirm = page.get_by_test_id("select-all-confirm")
        await expect(confirm.get_by_test_id("select-all-count")).to_have_text("11")
        # The batch of 5 ends first but cannot seat all 11: the one of 20 is chosen.
        take_from = confirm.get_by_label("Take seats from")
        await expect(take_from.locator("option")).to_have_count(2)
        await expect(take_from).to_have_value(str(big_id))
        await expect(take_from.locator("option:checked")).to_contain_text(
            f"20 free of 20, assigned {day(big_starts)}, ends {day(big_ends)}"
        )
        await no_axe_violation_nor_sideways_scroll(page)

        # The customer's own dashboard (its summary) says the same, with the same link.
        await page.goto(f"/companies/{company}")
        summary = page.get_by_test_id("customer-summary")
        await expect(summary.get_by_test_id("seats-unused")).to_contain_text(
            "25 free seats while 19 users wait for one."
        )
        await no_axe_violation_nor_sideways_scroll(page)
        await summary.get_by_role("link", name="Allocate now").click()
        await expect(page).to_have_url(re.compile(rf"/companies/{company}/licences/select-all\?tab=expired$"))

        await page.get_by_test_id("select-all-confirm").get_by_role("button", name="Allocate Licenses").click()
        await expect(page.get_by_test_id("flash")).to_have_text(
            f"11 users renewed until {day(big_ends)} from the batch assigned {day(big_starts)}."
        )
        held = await query(live_server, f"SELECT allocated FROM licence_batch WHERE id = {big_id}")
        assert held == [(11,)]

        # Still 8 unlicensed and 14 free: the flag stays, now opening Unlicensed.
        await page.get_by_test_id("manage-banner").get_by_role("button", name="Exit").click()
        await page.goto("/dashboard")
        row = page.locator(f"table.dash tbody tr[data-customer='{COMPANY}']")
        await expect(row.get_by_test_id("seats-unused")).to_contain_text("Seats unused: 14 free, 8 waiting")
        await expect(row.get_by_role("button", name=re.compile(r"^Allocate now"))).to_have_attribute(
            "value", f"{company}:allocate-unlicensed"
        )
    finally:
        await page.context.close()
