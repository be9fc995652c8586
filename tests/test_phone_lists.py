"""On a phone (390 px), the lists people act from show every row whole: its figures and
its actions lie inside the screen, not beyond its right edge nor clipped by a table that
scrolls inside itself. Not scrolling the page sideways is not enough: a table that
scrolls by itself hides its last columns (Requested Orders' ⋯, the Company list's
"Actions", the Admin Dashboard's Free seats and Pending, an invoice's Total, Status and
"Record payment"), and what opens in a row (the ⋯ menu, Assign's confirmation) with them.

Granite Builders (Summit Secure's customer) buys by invoice here, so the invoice lists
have a row; the purchase, never paid, leaves its batches as they are, which
tests/test_renewal_browser.py renews."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.live_server import LiveServer, new_page, sign_in
from tests.test_accessibility import PHONE

# Page markup and its script do not depend on the database: checked once, on the engine `make run` uses.
pytestmark = [pytest.mark.browser, pytest.mark.engine("sqlite")]

PARTNER = "alex.morgan@northwind-msp.example"
INVOICE_CUSTOMER = "Granite Builders"
INVOICE_MANAGER = "manager@granite-builders.example"

# Every rendered cell and control of the rows of `selector` (a table's rows): those not
# wholly inside the viewport, or cut off by an ancestor that clips (overflow other than
# visible), described by their row's first words. Elements not rendered at all (a closed
# <details>, a hidden input) are not on screen to be cut; the tests check by name, visibly,
# that what they look for is there.
CUT_OFF = """rows => {
  const cut = [];
  const seen = [];
  for (const row of document.querySelectorAll(rows)) {
    for (const el of [row, ...row.querySelectorAll(':scope > *, a, button, summary, input, select, .menu-items *')]) {
      if (!el.getClientRects().length) continue;
      seen.push(el);
      const box = el.getBoundingClientRect();
      let out = box.left < -0.5 || box.right > window.innerWidth + 0.5;
      for (let up = el.parentElement; up && !out; up = up.parentElement) {
        if (getComputedStyle(up).overflowX === 'visible') continue;
        const frame = up.getBoundingClientRect();
        out = box.left < frame.left - 0.5 || box.right > frame.right + 0.5;
      }
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible') out = true;
      const words = node => (node.innerText || node.value || '').replace(/\\s+/g, ' ').slice(0, 40);
      if (out) cut.push(`${words(row)} … <${el.tagName.toLowerCase()}> ${words(el)} [${box.left}, ${box.right}]`);
    }
  }
  return {cut, seen: seen.length};
}"""


async def cut_off(page: Page, rows: str) -> list[str]:
    found = await page.evaluate(CUT_OFF, rows)
    assert found["seen"], f"no row matches {rows}"
    return found["cut"]


async def on_a_phone(page: Page) -> None:
    await page.set_viewport_size(PHONE)


async def buy_by_invoice(page: Page) -> None:
    """Billing → Buy a license → Lite → Pay by Invoice: an issued invoice, waiting for its payment."""
    await page.get_by_role("navigation").get_by_role("link", name="Billing", exact=True).click()
    await page.get_by_role("link", name="Buy a license").first.click()
    await page.get_by_role("radio", name=re.compile(r"^Lite: ")).check()
    await page.get_by_role("radio", name=re.compile(r"^Pay by Invoice")).check()
    await page.get_by_role("button", name="See the price").click()
    await page.get_by_role("button", name="Pay by Invoice").click()
    await expect(page.get_by_test_id("flash")).to_contain_text("was issued")


async def test_requested_orders_rows_their_menu_and_assign_confirmation_fit_a_phone(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, PARTNER)
        await on_a_phone(page)
        await page.goto("/licences/orders?status=requested")
        rows = "#order-results tr[data-order]"
        row = page.locator(rows).first
        await expect(row.locator("summary[aria-label='Order actions']")).to_be_visible()
        assert not await cut_off(page, rows)

        order = await row.get_attribute("data-order")
        await row.locator("summary").click()
        here = page.locator(f"#order-{order}")
        await expect(here.get_by_role("button", name="Assign")).to_be_visible()
        await expect(here.get_by_role("link", name="Go to customer")).to_be_visible()
        assert not await cut_off(page, f"#order-{order}")

        # Assign asks first, in the row's place: the whole sentence and both buttons in view.
        await here.get_by_role("button", name="Assign").click()
        await expect(here.get_by_test_id("assign-confirm")).to_contain_text("12 months from now")
        assert not await cut_off(page, f"#order-{order}")
        fits = await here.get_by_test_id("assign-confirm").evaluate(
            "p => p.getBoundingClientRect().right <= window.innerWidth && p.scrollWidth <= p.clientWidth"
        )
        assert fits, "the Assign confirmation is cut off"
        await here.get_by_role("link", name="Cancel").click()
        await expect(here.locator(".status")).to_have_text("Requested")
    finally:
        await page.context.close()


async def test_company_list_and_dashboard_rows_fit_a_phone(browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, PARTNER)
        await on_a_phone(page)
        await page.goto("/companies")
        rows = "#company-results tr[data-company]"
        await expect(page.locator(rows).first.locator("summary")).to_be_visible()
        assert not await cut_off(page, rows)

        await page.goto("/dashboard")
        rows = "[data-testid=customer-figures] tr[data-customer]"
        first = page.locator(rows).first
        for figure in ("free", "pending"):
            await expect(first.locator(f"[data-figure={figure}] button")).to_be_visible()
        assert not await cut_off(page, rows)
    finally:
        await page.context.close()


async def test_invoice_lists_rows_fit_a_phone(browser, live_server: LiveServer):
    customer = await new_page(browser, live_server)
    partner = await new_page(browser, live_server)
    try:
        await sign_in(customer, INVOICE_MANAGER)
        await buy_by_invoice(customer)
        await on_a_phone(customer)
        await customer.reload()
        rows = "tr[data-invoice]"
        await expect(customer.locator(rows).first.get_by_role("link", name=re.compile("^View"))).to_be_visible()
        assert not await cut_off(customer, rows)

        await sign_in(partner, PARTNER)
        await on_a_phone(partner)
        company = await live_server.company_id(INVOICE_CUSTOMER)
        await partner.goto(f"/billing/invoices?customer={company}")
        row = partner.locator(rows).filter(has_text=INVOICE_CUSTOMER).first
        await expect(row.get_by_role("link", name=re.compile("^Record payment"))).to_be_visible()
        await expect(row.locator(".money")).to_be_visible()
        await expect(row.locator(".status")).to_be_visible()
        assert not await cut_off(partner, rows)
    finally:
        await customer.context.close()
        await partner.context.close()
