"""Bulk actions in Chromium, against a `portal serve` of their own with the demo
data (they change it), with an arq worker beside it on PostgreSQL and the
in-process queue on SQLite: a partner manager ticks the rows of "Ending in the
next 30 days" and chooses "Renew selected", reads what will change, confirms,
watches the progress bar give way to the summary per customer; then searches
the customer table, chooses "Allocate free seats" for every customer matching,
and reads what was allocated. Each page is axe-clean and fits 390 px."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from tests import conftest
from tests.live_server import PORTAL, LiveServer, _own_redis, serving, sign_in
from tests.test_auto_renewal_browser import accessible_and_fits_a_phone

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
LAPTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
async def own_server() -> AsyncIterator[LiveServer]:
    async with serving() as server:
        worker = None
        if conftest.ENGINE == "postgres":
            queue_url, _ = _own_redis(os.environ["REDIS_URL"])
            env = {**os.environ, "DATABASE_URL": server.database_url, "REDIS_URL": queue_url, "LOG_LEVEL": "WARNING"}
            worker = subprocess.Popen([str(PORTAL), "worker"], env=env, stdout=subprocess.DEVNULL)
        try:
            yield server
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)


async def summary_when_done(page: Page, where: str) -> None:
    await expect(page.get_by_test_id("bulk-summary")).to_be_visible(timeout=30_000)
    await page.set_viewport_size(LAPTOP)
    await accessible_and_fits_a_phone(page, where)
    await page.set_viewport_size(LAPTOP)


async def test_renew_selected_from_ending_soon_and_allocate_for_every_match(browser: Browser, own_server: LiveServer):
    context = await browser.new_context(base_url=own_server.url, viewport=LAPTOP)
    page = await context.new_page()
    try:
        await sign_in(page, PARTNER)
        await page.goto("/dashboard")
        ending = page.get_by_test_id("ending-soon")
        boxes = ending.locator("input[type=checkbox][form=bulk-ending]")
        ticked = await boxes.count()
        assert ticked >= 2, "the demo has batches ending within 72 hours"
        for n in range(ticked):
            await boxes.nth(n).check()
        await page.get_by_test_id("bulk-renew-ending").click()

        said = page.get_by_test_id("bulk-said")
        await expect(said).to_contain_text(f"Renew {ticked} batches for {ticked} customers: {2 * ticked} seats")
        await accessible_and_fits_a_phone(page, "the confirmation of Renew selected")
        await page.set_viewport_size(LAPTOP)
        await page.get_by_test_id("bulk-confirm").click()
        await expect(page.get_by_test_id("bulk-run-said")).to_contain_text(f"Renew {ticked} batches")
        await summary_when_done(page, "the summary of Renew selected")
        results = page.get_by_test_id("bulk-results")
        await expect(results.locator("tr[data-status=done]")).to_have_count(ticked)
        await expect(results).to_contain_text("Renewed: 2 ×")

        # The same rows again: nothing left to renew, so none is offered.
        await page.goto("/dashboard")
        await expect(page.get_by_test_id("ending-soon").locator("input[form=bulk-ending]")).to_have_count(0)

        # Every customer matching a search, across pages.
        search = page.get_by_role("searchbox", name="Search customers")
        await search.fill("Brightpath")
        await expect(page.get_by_test_id("customer-count")).to_contain_text("1 customer matching")
        bar = page.get_by_test_id("bulk-customers")
        await bar.get_by_label("With the selected customers").select_option(label="Allocate free seats")
        await page.get_by_test_id("bulk-every-match").check()
        await bar.get_by_role("button", name="Review…").click()
        await expect(said).to_contain_text("Allocate free seats at 1 customer")
        await accessible_and_fits_a_phone(page, "the confirmation of Allocate free seats")
        await page.set_viewport_size(LAPTOP)
        await page.get_by_test_id("bulk-confirm").click()
        await summary_when_done(page, "the summary of Allocate free seats")
        await expect(page.get_by_test_id("bulk-results")).to_contain_text("Brightpath Dental")
        await expect(page.get_by_test_id("bulk-results")).to_contain_text("Allocated")
    finally:
        await context.close()
