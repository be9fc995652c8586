"""axe-core (vendored: tests/vendor, see static/VENDORED.md) on every main page,
as a partner manager and as a customer manager, on a phone (390 px) and a laptop
(1366 px), failing on any violation; each of those pages at 390×844 without
sideways scrolling; and on a phone every row of the lists people act from with
its figures and actions inside the screen, not cut off at its right.

One sign-in per role for the whole module: the server allows 10 sign-ins a
minute per address, and the other browser tests sign in too."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.live_server import LiveServer, sign_in

# Page markup and its script do not depend on the database: checked once, on the engine `make run` uses.
pytestmark = [pytest.mark.browser, pytest.mark.engine("sqlite")]

AXE = Path(__file__).with_name("vendor") / "axe-4.10.3.min.js"
PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "dana.wells@brightpath-dental.example"
CUSTOMER_COMPANY = "Brightpath Dental"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}


async def main_pages(page: Page, live_server: LiveServer, partner: bool) -> list[str]:
    """The main pages this role reaches, the user page found from its company's list."""
    company = await live_server.company_id(CUSTOMER_COMPANY)
    pages = ["/dashboard", f"/companies/{company}"]
    pages += [f"/companies/{company}/licences?tab={tab}" for tab in ("active", "expired", "unlicensed", "orders")]
    pages += ["/notifications", "/profile"]
    if partner:
        pages += ["/companies", "/licences/orders", "/settings/api-keys", "/audit", "/billing", "/billing/invoices"]
        pages.append("/dashboard/pipeline")
        pages.append("/settings/webhooks")
        pages.append("/notifications/settings")
        pages.append("/settings/sign-in/sso")
        pages += ["/settings/emails", "/settings/emails/order_assigned", "/settings/brand"]
    else:
        pages.append(f"/companies/{company}/billing")
    await page.goto(f"/companies/{company}")
    user = page.locator(f"a[href^='/companies/{company}/users/']").first
    pages.append(await user.get_attribute("href"))
    if partner:
        pages.append(await first_bar(page))
    return pages


async def first_bar(page: Page) -> str:
    """The batches behind the forecast's first bar with seats: a page of its own."""
    await page.goto("/dashboard")
    bar = page.locator("svg.chart a[data-seats]:not([data-seats='0'])").first
    return await bar.get_attribute("href")


async def signed_in(browser: Browser, live_server: LiveServer, email: str) -> BrowserContext:
    context = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, email)
    await page.close()
    return context


@pytest.fixture(scope="module")
async def partner(browser, live_server) -> AsyncIterator[BrowserContext]:
    context = await signed_in(browser, live_server, PARTNER)
    yield context
    await context.close()


@pytest.fixture(scope="module")
async def customer(browser, live_server) -> AsyncIterator[BrowserContext]:
    context = await signed_in(browser, live_server, CUSTOMER)
    yield context
    await context.close()


async def axe_violations(page: Page) -> list[dict]:
    # A part of the page htmx is still loading is drawn dimmed (.htmx-request): judge the page as
    # it settles, not in passing.
    await expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    # Evaluated through the DevTools protocol, which the page's script-src 'self' does not govern.
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return result


async def scan(context: BrowserContext, paths: list[str], viewport: dict | None = None) -> dict[str, list[dict]]:
    page = await context.new_page()
    if viewport:
        await page.set_viewport_size(viewport)
    found = {}
    try:
        for path in paths:
            response = await page.goto(path)
            assert response is not None and response.ok, (path, response and response.status)
            # Content htmx loads on arrival (a summary) is part of the page.
            await page.wait_for_load_state("networkidle")
            if violations := await axe_violations(page):
                found[path] = violations
    finally:
        await page.close()
    return found


def report(found: dict[str, list[dict]]) -> str:
    return json.dumps(found, indent=1, ensure_ascii=False)


async def test_sign_in_page_has_no_axe_violations(browser: Browser, live_server: LiveServer):
    context = await browser.new_context(base_url=live_server.url)
    try:
        found = await scan(context, ["/login", "/forgot-password"])
    finally:
        await context.close()
    assert not found, report(found)


# A phone's layout differs (a list's rows are cards): what is clean at one width may not be at the other.
WIDTHS = pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390px", "1366px"])


@WIDTHS
async def test_partner_pages_have_no_axe_violations(partner: BrowserContext, live_server: LiveServer, viewport):
    page = await partner.new_page()
    paths = await main_pages(page, live_server, partner=True)
    await page.close()
    found = await scan(partner, paths, viewport)
    assert not found, report(found)


@WIDTHS
async def test_customer_pages_have_no_axe_violations(customer: BrowserContext, live_server: LiveServer, viewport):
    page = await customer.new_page()
    paths = await main_pages(page, live_server, partner=False)
    await page.close()
    found = await scan(customer, paths, viewport)
    assert not found, report(found)


async def too_wide(context: BrowserContext, paths: list[str]) -> dict[str, tuple[int, int]]:
    page = await context.new_page()
    await page.set_viewport_size(PHONE)
    wide = {}
    try:
        for path in paths:
            await page.goto(path)
            await page.wait_for_load_state("networkidle")
            widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if widths[0] > widths[1]:
                wide[path] = tuple(widths)
    finally:
        await page.close()
    return wide


async def test_no_page_scrolls_sideways_on_a_phone(
    partner: BrowserContext, customer: BrowserContext, live_server: LiveServer
):
    page = await partner.new_page()
    partner_paths = await main_pages(page, live_server, partner=True)
    await page.close()
    page = await customer.new_page()
    customer_paths = await main_pages(page, live_server, partner=False)
    await page.close()
    wide = await too_wide(partner, partner_paths) | {
        f"{path} (customer)": w for path, w in (await too_wide(customer, customer_paths)).items()
    }
    assert not wide, f"scrollWidth > innerWidth at 390 px: {wide}"


async def test_dashboard_on_a_phone_shows_what_needs_doing(partner: BrowserContext):
    """At 390 px the customer table scrolls inside its card and its first figure still opens the tab."""
    page = await partner.new_page()
    await page.set_viewport_size(PHONE)
    try:
        await page.goto("/dashboard")
        table = page.get_by_test_id("customer-figures")
        await expect(table).to_be_visible()
        row = table.locator("tbody tr[data-customer]").first
        name = await row.get_attribute("data-customer")
        await row.locator("[data-figure=expired] button").click()
        await expect(page).to_have_url(re.compile(r"/licences\?tab=expired$"))
        await expect(page.get_by_test_id("manage-banner")).to_contain_text(name)
        await page.get_by_test_id("manage-banner").get_by_role("button", name="Exit").click()
        await expect(page.get_by_test_id("manage-banner")).to_have_count(0)
    finally:
        await page.close()
