"""Turning automatic renewal on from a customer's page, in Chromium against
`portal serve` with the demo data: the partner manager opens the customer, finds
"Automatic renewal" (loaded into the page by htmx), chooses "Renew automatically",
14 days, the number of users holding seats, saves, and reads back what it will
do; axe-core finds nothing and the page fits 390 px. Then it is switched Off again.

Customer: Copperleaf Accounting, which no other browser test uses; its only batch
has ended, so even on, nothing of it is due: the demo data is left as it was."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, sign_in
from tests.test_accessibility import PHONE, axe_violations, report

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "Copperleaf Accounting"


async def accessible_and_fits_a_phone(page: Page, where: str) -> None:
    violations = await axe_violations(page)
    assert not violations, report({where: violations})
    await page.set_viewport_size(PHONE)
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"scrollWidth > innerWidth at 390 px: {widths}"
    violations = await axe_violations(page)
    assert not violations, report({f"{where} at 390 px": violations})


async def test_a_partner_manager_turns_automatic_renewal_on_from_the_customers_page(
    browser: Browser, live_server: LiveServer
):
    context = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await sign_in(page, PARTNER)
        company = await live_server.company_id(CUSTOMER)
        await page.goto(f"/companies/{company}")
        section = page.get_by_test_id("auto-renewal")
        await expect(section.get_by_role("heading", name="Automatic renewal")).to_be_visible()
        await expect(page.get_by_test_id("auto-renewal-said")).to_contain_text("Off: batches are renewed by hand")
        await accessible_and_fits_a_phone(page, f"/companies/{company} (automatic renewal off)")

        await section.get_by_role("radio", name="Renew automatically").check()
        await section.get_by_label("Days before a batch ends").select_option("14")
        await section.get_by_role("radio", name="The number of users holding seats").check()
        await section.get_by_role("button", name="Save automatic renewal").click()

        said = "Each batch is renewed 14 days before it ends, with as many seats as users hold then"
        await expect(page.get_by_test_id("flash")).to_contain_text(f"Automatic renewal for {CUSTOMER}: {said}")
        await expect(page.get_by_test_id("auto-renewal-said")).to_contain_text(said)
        await expect(section.get_by_role("radio", name="Renew automatically")).to_be_checked()
        await accessible_and_fits_a_phone(page, f"/companies/{company} (automatic renewal on)")

        await section.get_by_role("radio", name="Off").check()
        await section.get_by_role("button", name="Save automatic renewal").click()
        await expect(page.get_by_test_id("auto-renewal-said")).to_contain_text("Off: batches are renewed by hand")
    finally:
        await context.close()
