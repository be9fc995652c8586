"""The audit log in Chromium on a phone: "Add Filter" → Company by keyboard narrows
the log to sentences about that company, the address and "Export CSV" say the
same filter, and the page has no axe violation and no sideways scroll at 390 px."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.live_server import LiveServer, new_page, sign_in
from tests.test_accessibility import PHONE, axe_violations, report
from tests.test_keyboard import focused, tab_until

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
COMPANY = "Brightpath Dental"


@pytest.fixture
async def page(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    yield page
    await page.context.close()


async def manage_and_exit(page: Page, company: str) -> None:
    await page.goto("/companies")
    await page.get_by_placeholder("Filter companies by name").fill(company)
    row = page.locator("#company-results tr[data-company]", has_text=company).first
    await expect(page.locator("#company-results tr[data-company]")).to_have_count(1)
    await row.get_by_text("Actions").click()
    await row.get_by_role("button", name="Manage Company").click()
    banner = page.get_by_test_id("manage-banner")
    await expect(banner).to_contain_text(company)
    await banner.get_by_role("button", name="Exit").click()
    await expect(banner).to_have_count(0)


async def test_the_audit_log_filters_by_company_by_keyboard_and_exports_it(page: Page, live_server: LiveServer):
    await sign_in(page, PARTNER)
    await manage_and_exit(page, COMPANY)
    company_id = await live_server.company_id(COMPANY)

    await page.set_viewport_size(PHONE)
    await page.goto("/audit")
    await page.wait_for_load_state("networkidle")
    await tab_until(page, "#audit-filters summary[data-testid=add-filter]")
    await page.keyboard.press("Enter")
    menu = page.locator("#audit-filters details.menu")
    await expect(menu).to_have_attribute("open", "")
    await tab_until(page, "#audit-filters button[data-add-filter=company]")
    await page.keyboard.press("Enter")
    select = page.locator("#filter-fields select[name=company]")
    await expect(select).to_have_count(1)
    await tab_until(page, "#filter-fields select[name=company]")
    assert await focused(page, "#filter-fields select[name=company]")
    await page.keyboard.type(COMPANY)  # a closed select picks the option typed, and says "change"
    await page.wait_for_url(re.compile(rf"/audit\?company={company_id}$"))

    rows = page.locator("#audit-results tbody tr")
    await expect(rows.filter(has_text=f"Entered {COMPANY} with Manage Company").first).to_be_visible()
    await expect(rows.filter(has_text=f"Left {COMPANY} (Exit from Manage Company)").first).to_be_visible()
    for text in await rows.all_inner_texts():
        assert COMPANY in text, text
    assert "code" not in await page.locator("#audit-results").inner_html()  # words, not action codes

    export = page.get_by_test_id("audit-export")
    href = await export.get_attribute("href")
    assert href == f"/audit/export.csv?company={company_id}"
    download = await page.request.get(href)
    assert download.ok and download.headers["content-type"].startswith("text/csv")
    body = await download.text()
    assert f"Entered {COMPANY} with Manage Company" in body and "manage.enter" in body
    assert "Riverside Clinic" not in body

    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    violations = await axe_violations(page)
    assert not violations, report({"/audit (filtered, 390 px)": violations})

    # The chip goes by keyboard too, and the log lists every company again.
    await tab_until(page, "#filter-fields [data-remove-filter]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/audit$"))
    await expect(page.locator("#filter-fields .filter")).to_have_count(0)
