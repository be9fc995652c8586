"""Chromium against `portal serve` with the demo data. Each test signs in once:
the server allows 10 sign-ins a minute per address."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.live_server import LiveServer, new_page, sign_in

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "dana.wells@brightpath-dental.example"


@pytest.fixture
async def page(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    yield page
    await page.context.close()


async def filter_companies(page: Page, text: str) -> None:
    await page.get_by_placeholder("Filter companies by name").fill(text)
    # hx-push-url changes the address only once the swap is done.
    await page.wait_for_url(re.compile(rf"/companies\?q={text}$"))


def company_rows(page: Page):
    return page.locator("#company-results tr[data-company]")


async def test_partner_filters_manages_and_exits(page: Page, live_server: LiveServer):
    await sign_in(page, PARTNER)
    await expect(page.get_by_role("heading", name="Admin Dashboard")).to_be_visible()

    await page.get_by_role("navigation").get_by_role("link", name="Company").click()
    await expect(company_rows(page).filter(has_text="Brightpath Dental")).to_have_count(1)
    await filter_companies(page, "River")
    await expect(company_rows(page)).to_have_count(1)
    await expect(company_rows(page)).to_have_attribute("data-company", "Riverside Clinic")

    row = company_rows(page).first
    await row.get_by_text("Actions").click()
    await row.get_by_role("button", name="Manage Company").click()
    banner = page.get_by_test_id("manage-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Riverside Clinic")

    await banner.get_by_role("button", name="Exit").click()
    await expect(banner).to_have_count(0)
    await expect(page).to_have_url(f"{live_server.url}/dashboard")

    await page.get_by_role("navigation").get_by_role("link", name="Audit log").click()
    for action in ("manage.enter", "manage.exit"):
        entry = page.locator("tr", has=page.locator("code", has_text=action))
        await expect(entry.filter(has_text="Riverside Clinic")).to_have_count(1)


async def test_back_button_restores_unfiltered_list(page: Page, live_server: LiveServer):
    await sign_in(page, PARTNER)
    await page.goto("/companies")
    count = page.get_by_test_id("company-count")
    unfiltered = await count.inner_text()
    all_rows = await company_rows(page).count()

    await filter_companies(page, "River")
    await expect(company_rows(page)).to_have_count(1)

    await page.go_back()
    await expect(page).to_have_url(f"{live_server.url}/companies")
    await expect(count).to_have_text(unfiltered)
    await expect(company_rows(page)).to_have_count(all_rows)


async def test_customer_manager_cannot_open_sibling_by_url(page: Page, live_server: LiveServer):
    await sign_in(page, CUSTOMER)
    await expect(page.get_by_role("heading", name="Brightpath Dental")).to_be_visible()

    sibling = await live_server.company_id("Riverside Clinic")
    response = await page.goto(f"/companies/{sibling}")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    body = page.locator("body")
    await expect(body).not_to_contain_text("Riverside")
    await expect(body).not_to_contain_text("riverside-clinic.example")
