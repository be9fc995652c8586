"""The guides' main actions work with JavaScript off. In Chromium with
JavaScript disabled, against `portal serve` with the demo data: Requested Orders →
the row's "⋯" → Assign; then, in Manage Company, Expired Licenses → Select All →
Allocate Licenses. Every step is a plain link or form; htmx only enhances them.

One sign-in (the server allows 10 a minute, shared with the other browser tests),
and a customer the other browser tests leave alone."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, sign_in

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "Cedar & Pine Law"  # demo: 10 learners and its manager expired, an order of 15 waiting
QUANTITY = 15


def nav_link(page: Page, name: str):
    return page.get_by_role("navigation").get_by_role("link", name=name, exact=True)


def licence_tab(page: Page, label: str):
    return page.get_by_role("tab", name=re.compile(rf"^\s*{re.escape(label)}\b"))


async def assign_the_order(page: Page) -> str:
    await nav_link(page, "Licenses").click()
    await expect(page.get_by_role("heading", name="Requested Orders")).to_be_visible()
    rows = page.locator("#order-results tr[data-order]")
    ours = (
        rows.filter(has_text=CUSTOMER)
        .filter(has=page.get_by_role("cell", name=str(QUANTITY), exact=True))
        .filter(has=page.locator(".status", has_text="Requested"))
    )
    await expect(ours).to_have_count(1)
    order_id = await ours.get_attribute("data-order")

    # The "⋯" menu is a <details>: it opens without script, and holds a link to the order's actions.
    await ours.get_by_label("Order actions").click()
    await ours.get_by_role("link", name="Order actions…").click()
    await expect(page).to_have_url(re.compile(rf"/licences/orders/{order_id}/menu$"))
    await expect(page.get_by_role("heading", name=f"Order from {CUSTOMER}")).to_be_visible()
    await page.get_by_role("button", name="Assign").click()

    # Assign asks first, on a page of its own: customer, quantity, product, the end date.
    await expect(page).to_have_url(re.compile(rf"/licences/orders/{order_id}/assign$"))
    asked = page.get_by_test_id("assign-confirm")
    await expect(asked).to_contain_text(CUSTOMER)
    await expect(asked).to_contain_text(str(QUANTITY))
    await expect(asked).to_contain_text("Security Awareness Training — Premium")
    shown_end = re.search(r"Runs until\s*(\d\d \w{3} \d{4})", await asked.inner_text()).group(1)
    await page.get_by_role("button", name="Assign").click()

    await expect(page).to_have_url(re.compile(r"/licences/orders$"))
    flash = page.get_by_test_id("flash")
    await expect(flash).to_contain_text(f"Assigned {QUANTITY} × ")
    await expect(flash).to_contain_text(f"to {CUSTOMER}, running until ")
    # Back on Requested Orders (status Requested, the default), the order has left the list; every status shows it.
    await expect(page.locator(f"#order-{order_id}")).to_have_count(0)
    ends = re.search(r"running until (.+)\.$", await flash.inner_text()).group(1)
    assert ends == shown_end
    await page.goto("/licences/orders?status=any")
    await expect(page.locator(f"#order-{order_id} .status")).to_have_text("Assigned")
    return ends


async def manage_the_customer(page: Page) -> None:
    await nav_link(page, "Company").click()
    row = page.locator("#company-results tr[data-company]").filter(has_text=CUSTOMER)
    await expect(row).to_have_count(1)
    await row.get_by_text("Actions").click()
    await row.get_by_role("button", name="Manage Company").click()
    await expect(page.get_by_test_id("manage-banner")).to_contain_text(CUSTOMER)


async def test_assign_then_select_all_and_allocate_without_javascript(browser: Browser, live_server: LiveServer):
    context = await browser.new_context(
        base_url=live_server.url, java_script_enabled=False, viewport={"width": 390, "height": 844}
    )
    page = await context.new_page()
    try:
        await sign_in(page, PARTNER)
        ends = await assign_the_order(page)

        await manage_the_customer(page)
        await nav_link(page, "Licenses").click()
        expired = licence_tab(page, "Expired Licenses")
        await expect(expired).to_have_attribute("aria-selected", "true")
        expired_count = int(await expired.locator(".count").inner_text())
        assert expired_count == 11, "the demo's Cedar & Pine Law has ten learners and its manager expired"

        await page.get_by_test_id("select-all").click()
        await expect(page).to_have_url(re.compile(r"/licences/select-all\?tab=expired"))
        confirm = page.get_by_test_id("select-all-confirm")
        await expect(confirm.get_by_test_id("select-all-count")).to_have_text(str(expired_count))
        take_from = confirm.get_by_label("Take seats from")
        # Preselected: the batch just assigned, the one with a seat for everyone.
        checked = take_from.locator("option:checked")
        await expect(checked).to_contain_text(f": {QUANTITY} free of {QUANTITY}, assigned ")
        await expect(checked).to_contain_text(f", ends {ends}")
        assigned = re.search(r"assigned (.+), ends", await checked.inner_text()).group(1)
        await confirm.get_by_role("button", name="Allocate Licenses").click()

        await expect(page.get_by_test_id("flash")).to_have_text(
            f"{expired_count} users renewed until {ends} from the batch assigned {assigned}."
        )
        await expect(licence_tab(page, "Active")).to_have_attribute("aria-selected", "true")
        await expect(licence_tab(page, "Expired Licenses").locator(".count")).to_have_text("0")

        # Shown once: a reload says nothing more.
        await page.reload()
        await expect(page.get_by_test_id("flash")).to_have_count(0)
    finally:
        await context.close()
