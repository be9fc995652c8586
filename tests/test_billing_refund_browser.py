"""Refund in Chromium, against `portal serve` with the demo data: partner staff open a
card-paid invoice of Copperleaf Accounting (bought here with the test card unless
test_billing_browser bought it already), refund part of it with a reason, confirm
what will change, see what changed and open the credit note. Every step's page
passes axe-core and fits a phone (390 px); the confirmation is given by keyboard.

The refund is of $10.00 only: Copperleaf's seats and subscription stay as
test_billing_browser leaves and checks them."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, new_page, sign_in
from tests.test_billing_browser import ONLINE_CUSTOMER, ONLINE_MANAGER, _fits, buy_pro_online, flash

pytestmark = pytest.mark.browser

PARTNER = "priya.shah@harbor-it.example"  # Harbor IT sells to Copperleaf Accounting


async def a_card_paid_invoice(browser: Browser, live_server: LiveServer) -> str:
    """The path of one of Copperleaf's invoices paid by card, bought first if need be."""
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, ONLINE_MANAGER)
        company = await live_server.company_id(ONLINE_CUSTOMER)
        await page.goto(f"/companies/{company}/billing")
        if await page.get_by_role("link", name="Upgrade").count() == 0:
            await buy_pro_online(page)
        await page.goto(f"/companies/{company}/billing")
        link = page.locator("tr[data-invoice]").filter(has_text="Paid").locator("a").first
        path = await link.get_attribute("href")
        assert path, "a paid invoice is listed"
        return path
    finally:
        await page.context.close()


async def accessible(page: Page) -> None:
    assert await _fits(page) == ([], True), page.url


async def test_partner_staff_refund_part_of_a_card_payment(browser: Browser, live_server: LiveServer):
    invoice_path = await a_card_paid_invoice(browser, live_server)
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, PARTNER)
        await page.goto(invoice_path)
        await page.get_by_test_id("refund-link").click()
        form = page.get_by_test_id("refund-form")
        await expect(form.get_by_role("heading", name=re.compile(r"^Refund invoice INV-"))).to_be_visible()
        # The amount starts as what is left to refund.
        left = (await form.get_by_test_id("left").inner_text()).strip()
        assert await form.get_by_label(re.compile(r"^Amount")).input_value() == left.split()[0].lstrip("$").replace(
            ",", ""
        )
        await accessible(page)

        # No reason: said beside the field, and the page still passes.
        await form.get_by_label(re.compile(r"^Amount")).fill("10.00")
        await form.get_by_role("button", name="Continue").click()
        await expect(page.get_by_text("Say why the money is refunded.")).to_be_visible()
        await accessible(page)

        await page.get_by_label("Reason").fill("Goodwill: a week of downtime")
        await page.get_by_role("button", name="Continue").click()
        confirm = page.get_by_test_id("refund-confirm")
        await expect(confirm.get_by_test_id("will-change")).to_have_text(
            re.compile(
                r"^Refund \$10\.00 USD to the card ending 4242 and issue a credit note for it against invoice INV-"
            )
        )
        await accessible(page)
        button = confirm.get_by_role("button", name="Refund $10.00 USD")
        await button.focus()
        await page.keyboard.press("Enter")

        await expect(flash(page)).to_contain_text("Refunded $10.00 USD to the card. Credit note CN-")
        refunds = page.get_by_test_id("refunds")
        row = refunds.get_by_test_id("refund-row").filter(has_text="Goodwill: a week of downtime")
        await expect(row).to_contain_text("$10.00 USD")
        await expect(row).to_contain_text("refunded to the card")
        await accessible(page)

        await row.get_by_role("link", name=re.compile(r"^CN-")).click()
        note = page.get_by_test_id("credit-note")
        await expect(note.get_by_role("heading", name=re.compile(r"^Credit note CN-"))).to_be_visible()
        await expect(note.get_by_test_id("total")).to_have_text("$10.00 USD")
        await expect(note.get_by_test_id("credit-reason")).to_have_text("Reason: Goodwill: a week of downtime")
        await accessible(page)
    finally:
        await page.context.close()


async def test_customer_managers_see_no_refund(browser: Browser, live_server: LiveServer):
    invoice_path = await a_card_paid_invoice(browser, live_server)
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, ONLINE_MANAGER)
        await page.goto(invoice_path)
        await expect(page.get_by_test_id("invoice")).to_be_visible()
        await expect(page.get_by_test_id("refund-link")).to_have_count(0)
    finally:
        await page.context.close()
