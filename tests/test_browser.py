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
    for said in ("Entered Riverside Clinic with Manage Company", "Left Riverside Clinic (Exit from Manage Company)"):
        await expect(page.locator("#audit-results tr", has_text=said).first).to_be_visible()


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


async def test_enhancements_run_under_the_content_security_policy(page: Page, live_server: LiveServer):
    """What inline handlers did before, portal.js does now, with script-src 'self':
    "Add Filter" closes its menu, the filter's × removes it and lists again, the
    row's menu loads in place, Select All's Cancel dismisses the box, a new key is
    selected in one click; the dashboard's outline is indented without inline style.
    And the browser reports nothing the policy blocked."""
    blocked: list[str] = []
    page.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
    await sign_in(page, PARTNER)

    depth = page.get_by_test_id("wing-tree").locator("li[data-depth='1']").first
    assert await depth.evaluate("li => getComputedStyle(li).paddingLeft") == "24px"

    await page.get_by_role("navigation").get_by_role("link", name="Licenses").click()
    add_filter = page.locator("#order-filters details.menu")
    await page.get_by_test_id("add-filter").click()
    await add_filter.get_by_role("button", name="Quantity at least", exact=True).click()
    await expect(add_filter).not_to_have_attribute("open", "")
    await page.locator("#filter-fields input[name=min_quantity]").fill("12")
    await page.keyboard.press("Tab")  # "change" lists again
    await page.wait_for_url(re.compile(r"/licences/orders\?status=requested&min_quantity=12$"))
    await page.get_by_role("button", name="Remove filter Quantity at least").click()
    await expect(page.locator("#filter-fields .filter")).to_have_count(1)  # the Status chip, on by default
    await page.wait_for_url(re.compile(r"/licences/orders\?status=requested$"))

    row = page.locator("#order-results tr[data-order]").filter(has=page.locator(".status", has_text="Requested")).first
    await row.get_by_label("Order actions").click()
    await expect(row.get_by_role("button", name="Assign")).to_be_visible()
    await expect(row.get_by_role("link", name="Order actions…")).to_have_count(0)

    # An htmx request answered with an error: shown in the layout's error region, the list left
    # as it was (htmx swaps 4xx by the layout's config; the handler retargets it); the next request clears it.
    await page.evaluate("htmx.ajax('GET', '/licences/orders/2147483000/menu', {target: '#order-results'})")
    await expect(page.locator("#error-region").get_by_role("alert")).to_contain_text("Not found")
    await expect(page.locator("#order-results tr[data-order]").first).to_be_visible()
    await page.get_by_test_id("add-filter").click()
    await add_filter.get_by_role("button", name="Status", exact=True).click()
    await expect(page.locator("#filter-fields select[name=status]")).to_have_count(1)
    await expect(page.locator("#error-region")).to_be_empty()

    riverside = await live_server.company_id("Riverside Clinic")
    await page.goto(f"/companies/{riverside}/licences?tab=expired")
    await page.get_by_test_id("select-all").click()
    confirm = page.get_by_test_id("select-all-confirm")
    await expect(confirm).to_be_visible()
    await confirm.get_by_role("link", name=re.compile("^(Cancel|Back)$")).click()
    await expect(confirm).to_have_count(0)
    await expect(page).to_have_url(f"{live_server.url}/companies/{riverside}/licences?tab=expired")

    await page.get_by_role("navigation").get_by_role("link", name="API keys").click()
    await page.get_by_label("Name").fill("Selected in one click")
    await page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-api-key")
    await key.click()
    assert await key.evaluate("i => i.selectionStart === 0 && i.selectionEnd === i.value.length && i.value.length > 0")

    assert blocked == []
