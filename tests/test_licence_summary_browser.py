"""The license summary in Chromium on a phone (390 px), on the customer's Billing
and Licenses pages: no axe-core violation, the whole of it inside the screen,
and nothing scrolls sideways. Brightpath Dental holds seats of running batches
and no subscription: the summary says what it holds and who renews it."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from tests.live_server import LiveServer, sign_in
from tests.test_accessibility import CUSTOMER, CUSTOMER_COMPANY, PHONE, axe_violations, report

pytestmark = pytest.mark.browser


async def test_the_summary_passes_axe_and_fits_a_phone(browser: Browser, live_server: LiveServer):
    company = await live_server.company_id(CUSTOMER_COMPANY)
    context = await browser.new_context(base_url=live_server.url, viewport=PHONE)
    try:
        page = await context.new_page()
        await sign_in(page, CUSTOMER)
        for path in (f"/companies/{company}/billing", f"/companies/{company}/licences"):
            await page.goto(path)
            await page.wait_for_load_state("networkidle")
            summary = page.get_by_test_id("license-summary")
            await expect(summary).to_be_visible()
            await expect(summary.get_by_test_id("summary-seats")).to_have_text(
                re.compile(r"^[\d,]+ bought, [\d,]+ held, [\d,]+ free$")
            )
            await expect(summary.get_by_test_id("summary-renews")).to_have_text(re.compile(r"^Renewed "))
            box = await summary.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (path, box)
            inner = await summary.evaluate("el => [el.scrollWidth, el.clientWidth]")
            assert inner[0] <= inner[1], (path, inner)
            widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert widths[0] <= widths[1], (path, widths)
            found = await axe_violations(page)
            assert not found, report({path: found})
    finally:
        await context.close()
