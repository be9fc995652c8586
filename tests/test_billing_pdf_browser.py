"""Invoices a finance team accepts, in Chromium, on a server of this module's own (its demo
data is changed by nobody else): partner staff set the seller details (a bad tax id is
refused with its message first), a customer buys by invoice and downloads the invoice
as PDF from its page, which carries those details; partner staff see the due date,
days overdue and the outstanding total on Invoices and download the ageing CSV. The
pages pass axe-core and fit a 390 px phone."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from pypdf import PdfReader

from tests.live_server import LiveServer, new_page, serving, sign_in
from tests.test_accessibility import PHONE, axe_violations, report

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "dana.wells@brightpath-dental.example"
CUSTOMER_COMPANY = "Brightpath Dental"
INSTRUCTIONS = "ACH to Northwind MSP LLC: routing 011000015, account 000123456789"


@pytest.fixture(scope="module")
async def own_server() -> AsyncIterator[LiveServer]:
    async with serving() as server:
        yield server


async def _fits(page: Page) -> tuple[list, bool]:
    await page.set_viewport_size({"width": 1280, "height": 900})
    violations = await axe_violations(page)
    await page.set_viewport_size(PHONE)
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    violations += await axe_violations(page)
    await page.set_viewport_size({"width": 1280, "height": 900})
    return violations, widths[0] <= widths[1]


async def _set_seller_details(page: Page, found: dict) -> None:
    await page.get_by_role("navigation").get_by_role("link", name="Billing", exact=True).click()
    await page.get_by_role("link", name="Catalogue and settings").click()
    form = page.get_by_test_id("seller-details")
    await form.get_by_label("Legal name").fill("Northwind MSP LLC")
    await form.get_by_label(re.compile(r"^Address")).fill("200 Harbor Way\nSeattle, WA 98104")
    await form.get_by_label(re.compile(r"^Tax id")).fill("91=1234567")
    await form.get_by_label(re.compile(r"^Payment instructions")).fill(INSTRUCTIONS + "\nChecks to PO Box 77, Seattle")
    await form.get_by_role("button", name="Save seller details").click()
    await expect(page.get_by_role("alert").filter(has_text="A tax id has letters, digits")).to_be_visible()
    await expect(form.get_by_label("Legal name")).to_have_value("Northwind MSP LLC")  # nothing typed is lost
    violations, fits = await _fits(page)
    found["/billing/settings (tax id refused)"] = (violations, fits)
    await form.get_by_label(re.compile(r"^Tax id")).fill("91-1234567")
    await form.get_by_role("button", name="Save seller details").click()
    await expect(page.get_by_test_id("flash")).to_contain_text("Seller details saved")
    await expect(page.get_by_test_id("flash")).to_contain_text("tax id 91-1234567")


async def _buy_by_invoice(page: Page) -> str:
    """Lite by invoice; returns the invoice's number."""
    await page.get_by_role("navigation").get_by_role("link", name="Billing", exact=True).click()
    await page.get_by_role("link", name="Buy a license").first.click()
    await page.get_by_role("radio", name=re.compile(r"^Lite: ")).check()
    await page.get_by_role("radio", name=re.compile(r"^Pay by Invoice")).check()
    await page.get_by_role("button", name="See the price").click()
    await page.get_by_role("button", name="Pay by Invoice").click()
    await expect(page.get_by_test_id("flash")).to_contain_text("was issued")
    found = re.search(r"Invoice (INV-\d+)", await page.get_by_test_id("flash").inner_text())
    assert found
    return found.group(1)


def _pdf_text(path: Path) -> str:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))


async def test_a_customer_downloads_a_pdf_invoice_and_partner_staff_the_ageing_csv(
    browser: Browser, own_server: LiveServer
):
    partner = await new_page(browser, own_server)
    customer = await new_page(browser, own_server)
    checked: dict[str, tuple[list, bool]] = {}
    try:
        await sign_in(partner, PARTNER)
        await _set_seller_details(partner, checked)

        await sign_in(customer, CUSTOMER)
        number = await _buy_by_invoice(customer)
        row = customer.locator("tr[data-invoice]").filter(has_text=number)
        await row.get_by_role("link", name=number, exact=True).click()
        await expect(customer.get_by_role("heading", name=f"Invoice {number}")).to_be_visible()
        due = (await customer.locator("dt:text-is('Due') + dd").inner_text()).strip()
        async with customer.expect_download() as downloading:
            await customer.get_by_role("link", name="Download PDF").click()
        download = await downloading.value
        assert download.suggested_filename == f"{number}.pdf"
        text = _pdf_text(Path(await download.path()))
        for field in (
            f"Invoice {number}",
            "Northwind MSP LLC",
            "200 Harbor Way",
            "Seattle, WA 98104",
            "Tax id: 91-1234567",
            f"Due date {due}",
            "Bill to",
            CUSTOMER_COMPANY,
            "How to pay",
            INSTRUCTIONS,
            "Checks to PO Box 77, Seattle",
        ):
            assert field in text, f"{field!r} not in {text}"
        checked[f"invoice {number} (customer)"] = await _fits(customer)

        # The list's row has its own PDF link too.
        await customer.go_back()
        listed = customer.locator("tr[data-invoice]").filter(has_text=number)
        async with customer.expect_download() as again:
            await listed.get_by_role("link", name=f"Download PDF of {number}").click()
        assert (await again.value).suggested_filename == f"{number}.pdf"

        await partner.goto("/billing/invoices")
        await expect(partner.get_by_test_id("outstanding")).to_contain_text("unpaid")
        partner_row = partner.locator("tr[data-invoice]").filter(has_text=number)
        await expect(partner_row.get_by_role("cell", name=due)).to_be_visible()
        checked["/billing/invoices (partner)"] = await _fits(partner)
        async with partner.expect_download() as ageing:
            await partner.get_by_role("link", name="Ageing CSV").click()
        sheet = Path(await (await ageing.value).path()).read_text(encoding="utf-8-sig")
        rows = {r[0]: r for r in csv.reader(io.StringIO(sheet))}
        assert rows["Customer"][3:8] == [
            "Current (not yet due)",
            "0–30 days overdue",
            "31–60 days overdue",
            "61–90 days overdue",
            "90+ days overdue",
        ]
        # Just issued, due in 30 days: all of it is current.
        brightpath = rows[CUSTOMER_COMPANY]
        assert brightpath[2] == "USD" and float(brightpath[3]) > 0 and brightpath[3] == brightpath[8]
        await partner.goto("/billing/settings")
        checked["/billing/settings (partner)"] = await _fits(partner)
    finally:
        await partner.context.close()
        await customer.context.close()
    violations = {path: v for path, (v, _) in checked.items() if v}
    assert not violations, report(violations)
    wide = [path for path, (_, fits) in checked.items() if not fits]
    assert not wide, f"scrollWidth > innerWidth at 390 px: {wide}"
