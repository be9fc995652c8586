"""The e-mail editor and the brand in Chromium: a partner manager edits a kind's
words at 390 px, the preview follows as they type (htmx, no inline script) and
shows the line at fault of a broken one; the editor and the Brand page are axe
clean and never scroll sideways; a logo and color saved there show in the header
of the partner's customer's pages. The test puts the standard words and no brand
back, since the live server is shared with the other browser tests."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, new_page, sign_in
from tests.test_accessibility import PHONE, axe_violations, report

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "dana.wells@brightpath-dental.example"
EDITOR = "/settings/emails/order_declined"
# A 1×1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101001835d0e30000000049454e44ae426082"
)


async def wide(page: Page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")


async def test_the_editor_previews_as_typed_refuses_a_broken_template_and_is_axe_clean_at_390_px(
    browser: Browser, live_server: LiveServer
):
    page = await new_page(browser, live_server)
    await page.set_viewport_size(PHONE)
    try:
        await sign_in(page, PARTNER)
        await page.goto("/settings/emails")
        await page.get_by_role("link", name="Order declined").click()
        await expect(page.get_by_role("heading", name="Order declined", level=1)).to_be_visible()
        assert not await axe_violations(page), report({EDITOR: await axe_violations(page)})
        assert not await wide(page)

        await page.get_by_label("Subject", exact=True).fill("No to {{ quantity }} licenses")
        await page.get_by_label("Text", exact=True).fill("Hello from {{ sender_name }}.\n\nWhy: {{ reason }}")
        await expect(page.get_by_test_id("preview-subject")).to_have_text("No to 25 licenses")
        await expect(page.get_by_test_id("preview-text")).to_contain_text("Why: The budget moves to next quarter.")

        await page.get_by_label("Text", exact=True).fill("Hello\n{{ ''.__class__ }}")
        await expect(page.get_by_test_id("preview-refused")).to_contain_text("Line 2:")
        assert not await axe_violations(page)
        assert not await wide(page)
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_test_id("body-error")).to_contain_text("Line 2:")

        await page.get_by_label("Text", exact=True).fill("Why: {{ reason }}")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_test_id("flash")).to_contain_text("now goes in your words")
        await page.get_by_role("button", name="Send me a test").click()
        await expect(page.get_by_test_id("flash")).to_contain_text(f"queued to {PARTNER}")
        await page.get_by_role("button", name="Reset to default").click()
        await expect(page.get_by_test_id("flash")).to_contain_text("standard words again")
    finally:
        await page.context.close()


async def test_a_logo_and_color_saved_on_the_brand_page_show_on_the_customer_s_pages(
    browser: Browser, live_server: LiveServer, tmp_path
):
    partner = await new_page(browser, live_server)
    await partner.set_viewport_size(PHONE)
    customer = await new_page(browser, live_server)
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    try:
        await sign_in(partner, PARTNER)
        await partner.goto("/settings/brand")
        assert not await axe_violations(partner) and not await wide(partner)
        await partner.get_by_label("Logo", exact=True).set_input_files(str(logo))
        await partner.get_by_label("Color", exact=True).fill("#0a7a55")
        await partner.get_by_role("button", name="Save brand").click()
        await expect(partner.get_by_test_id("flash")).to_contain_text("the color is now #0a7a55 and the logo is new")
        assert not await axe_violations(partner) and not await wide(partner)

        await sign_in(customer, CUSTOMER)
        company = await live_server.company_id("Brightpath Dental")
        await customer.goto(f"/companies/{company}")
        header_logo = customer.get_by_test_id("brand-logo")
        await expect(header_logo).to_be_visible()
        assert await header_logo.evaluate("img => img.naturalWidth") == 1
        border = await customer.locator("header.topbar").evaluate("h => getComputedStyle(h).borderTopColor")
        assert border == "rgb(10, 122, 85)"
        await customer.set_viewport_size(PHONE)
        assert not await axe_violations(customer) and not await wide(customer)
    finally:
        # The other browser tests see the portal unbranded.
        await partner.goto("/settings/brand")
        await partner.get_by_label("Color", exact=True).fill("")
        if await partner.get_by_label("Remove the logo").count():
            await partner.get_by_label("Remove the logo").check()
        await partner.get_by_role("button", name="Save brand").click()
        await expect(partner.get_by_test_id("flash")).to_be_visible()
        await partner.context.close()
        await customer.context.close()
