"""The licence guide in Chromium, end to end against `portal serve` with the demo
data: a customer manager requests 25 licences → a partner manager filters
Requested Orders and assigns the order → in Manage Company, Expired Licenses →
Select All → Allocate Licenses → the users show Active with the new end date.

Two sign-ins in all: the server allows 10 a minute per address, and the other
browser tests of the session sign in too."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from dateutil.relativedelta import relativedelta
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, new_page, sign_in

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "dana.wells@brightpath-dental.example"
CUSTOMER_COMPANY = "Brightpath Dental"
CUSTOMER_NAME = "Dana Wells"
QUANTITY = 25
SCREENSHOT = "/tmp/licences.png"


def nav_link(page: Page, name: str):
    return page.get_by_role("navigation").get_by_role("link", name=name, exact=True)


def licence_tab(page: Page, label: str):
    """A tab of the Licenses section; its accessible name is the label and the count."""
    return page.get_by_role("tab", name=re.compile(rf"^\s*{re.escape(label)}\b"))


def day(moment: datetime) -> str:
    return moment.strftime("%d %b %Y")  # the templates' `day` filter


async def add_filter(page: Page, label: str, field: str) -> None:
    """ "Add Filter" → one of its items; the field arrives by an htmx swap."""
    await page.get_by_test_id("add-filter").click()
    await page.locator("#order-filters .menu-items").get_by_role("button", name=label, exact=True).click()
    await expect(page.locator(f"#filter-fields select[name={field}]")).to_have_count(1)


async def request_licences(page: Page) -> None:
    """Step 1, as the customer manager."""
    await sign_in(page, CUSTOMER)
    await nav_link(page, "Licenses").click()
    await expect(page.get_by_role("heading", name="Licenses")).to_be_visible()
    await page.get_by_role("link", name="Request Licenses").click()
    await page.get_by_label("Number of licenses").fill(str(QUANTITY))
    await page.get_by_role("button", name="Save").click()

    await expect(page).to_have_url(re.compile(r"/licences\?tab=orders"))
    await expect(licence_tab(page, "Orders")).to_have_attribute("aria-selected", "true")
    await expect(
        page.get_by_role("status").filter(has_text=f"Your request for {QUANTITY} licences was sent")
    ).to_be_visible()
    mine = page.locator("#licence-tab tbody tr").filter(has_text=CUSTOMER_NAME)
    await expect(mine).to_have_count(1)
    await expect(mine.get_by_role("cell", name=str(QUANTITY), exact=True)).to_be_visible()
    await expect(mine.locator(".status")).to_have_text("Requested")


async def assign_order(page: Page, customer_id: int) -> None:
    """Step 2, as the partner manager: filter Requested Orders by customer and
    status, then "Assign" from the row's three-dots menu."""
    await sign_in(page, PARTNER)
    await nav_link(page, "Licenses").click()
    await expect(page.get_by_role("heading", name="Requested Orders")).to_be_visible()
    # Survives htmx swaps, not a page load: proves the filters never reload the page.
    await page.evaluate("window.__sameDocument = true")

    await add_filter(page, "Customer", "customer")
    await page.locator("#filter-fields select[name=customer]").select_option(label=CUSTOMER_COMPANY)
    # hx-push-url changes the address only once the swap is done.
    await page.wait_for_url(re.compile(rf"/licences/orders\?(.*&)?customer={customer_id}(&|$)"))

    await add_filter(page, "Status", "status")
    await page.locator("#filter-fields select[name=status]").select_option("requested")
    await page.wait_for_url(
        re.compile(rf"/licences/orders\?(?=(.*&)?customer={customer_id}(&|$))(?=(.*&)?status=requested(&|$))")
    )
    assert await page.evaluate("window.__sameDocument === true"), "the filters reloaded the page"
    await expect(page.locator("#filter-fields .filter")).to_have_count(2)

    rows = page.locator("#order-results tr[data-order]")
    await expect(rows.first).to_be_visible()
    for i in range(await rows.count()):
        await expect(rows.nth(i)).to_contain_text(CUSTOMER_COMPANY)
        await expect(rows.nth(i).locator(".status")).to_have_text("Requested")
    ours = rows.filter(has=page.get_by_role("cell", name=str(QUANTITY), exact=True))
    await expect(ours).to_have_count(1)
    await expect(ours).to_contain_text(CUSTOMER_NAME)
    order_id = await ours.get_attribute("data-order")

    await ours.get_by_label("Order actions").click()
    await ours.get_by_role("button", name="Assign").click()
    # The row is swapped in place (outerHTML): find it again by its id.
    row = page.locator(f"#order-{order_id}")
    await expect(row.locator(".status")).to_have_text("Assigned")
    await expect(row.get_by_role("alert")).to_have_count(0)
    assert await page.evaluate("window.__sameDocument === true"), "Assign reloaded the page"


async def manage_customer(page: Page) -> None:
    """Step 3a: Company → the customer's "Actions" → "Manage Company"."""
    await nav_link(page, "Company").click()
    row = page.locator("#company-results tr[data-company]").filter(has_text=CUSTOMER_COMPANY)
    await expect(row).to_have_count(1)
    await row.get_by_text("Actions").click()
    await row.get_by_role("button", name="Manage Company").click()
    banner = page.get_by_test_id("manage-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text(CUSTOMER_COMPANY)


async def test_request_assign_select_all_allocate(browser: Browser, live_server: LiveServer):
    customer_id = await live_server.company_id(CUSTOMER_COMPANY)

    customer = await new_page(browser, live_server)
    try:
        await request_licences(customer)
    finally:
        await customer.context.close()

    page = await new_page(browser, live_server)
    try:
        before_assign = datetime.now(UTC)
        await assign_order(page, customer_id)
        after_assign = datetime.now(UTC)
        # The batch runs 12 months from the instant of "Assign"; a midnight may pass in between.
        new_end_days = {day(before_assign + relativedelta(months=12)), day(after_assign + relativedelta(months=12))}

        await manage_customer(page)
        await nav_link(page, "Licenses").click()
        await expect(page.get_by_role("heading", name="Licenses")).to_be_visible()
        await expect(page.get_by_test_id("manage-banner")).to_be_visible()

        expired_tab = licence_tab(page, "Expired Licenses")
        await expired_tab.click()
        await expect(expired_tab).to_have_attribute("aria-selected", "true")
        expired_count = int(await expired_tab.locator(".count").inner_text())
        assert expired_count > 0, "the demo customer should have expired users"
        expired_rows = page.locator("#allocate-form tbody tr")
        await expect(expired_rows).to_have_count(min(expired_count, 25))
        expired_emails = [
            (await expired_rows.nth(i).locator("td").nth(2).inner_text()).strip()
            for i in range(await expired_rows.count())
        ]
        for i in range(len(expired_emails)):
            await expect(expired_rows.nth(i).locator(".status")).to_have_text("Expired")

        await page.get_by_test_id("select-all").click()
        confirm = page.get_by_test_id("select-all-confirm")
        await expect(confirm).to_be_visible()
        await expect(confirm.get_by_test_id("select-all-count")).to_have_text(str(expired_count))
        await expect(confirm).to_contain_text(f"{expired_count} users selected, on every page")

        # "Take seats from" lists running batches with free seats, the one ending first first:
        # pick the batch just assigned, 25 free and ending 12 months from now.
        take_from = confirm.get_by_label("Take seats from")
        ours = take_from.locator("option").filter(
            has_text=re.compile(rf": {QUANTITY} free, ends ({'|'.join(map(re.escape, new_end_days))})$")
        )
        await expect(ours).to_have_count(1)
        new_end = re.search(r"ends (.+)$", await ours.inner_text()).group(1)
        await take_from.select_option(await ours.get_attribute("value"))

        await confirm.get_by_role("button", name="Allocate Licenses").click()
        result = page.get_by_test_id("flash")
        await expect(result).to_have_text(f"{expired_count} users renewed until {new_end}.")
        await expect(page.get_by_role("alert")).to_have_count(0)

        active_tab = licence_tab(page, "Active")
        await expect(active_tab).to_have_attribute("aria-selected", "true")
        await expect(licence_tab(page, "Expired Licenses").locator(".count")).to_have_text("0")
        active_rows = page.locator("#allocate-form tbody tr")
        for email in expired_emails:
            row = active_rows.filter(has=page.get_by_role("cell", name=email, exact=True))
            await expect(row).to_have_count(1)
            await expect(row.locator(".status")).to_have_text("Active")
            await expect(row.locator("td").last).to_have_text(new_end)
        learners = active_rows.filter(has_text="Learner").filter(has=page.get_by_text(new_end, exact=True))
        assert await learners.count() >= 10, "the renewed learners should be listed as Active"

        # The batch just assigned now has the renewed users on its seats.
        batch = page.get_by_test_id("batches").locator("tbody tr").filter(has_text=new_end)
        await expect(batch).to_have_count(1)
        cells = batch.locator("td")
        await expect(cells.nth(1)).to_have_text(str(QUANTITY))
        await expect(cells.nth(2)).to_have_text(str(expired_count))
        await expect(cells.nth(3)).to_have_text(str(QUANTITY - expired_count))

        await page.screenshot(path=SCREENSHOT, full_page=True)

        await licence_tab(page, "Expired Licenses").click()
        await expect(licence_tab(page, "Expired Licenses")).to_have_attribute("aria-selected", "true")
        await expect(licence_tab(page, "Expired Licenses").locator(".count")).to_have_text("0")
        await expect(page.locator("#allocate-form tbody tr")).to_have_count(1)
        await expect(page.locator("#allocate-form tbody td.empty")).to_be_visible()
    finally:
        await page.context.close()
