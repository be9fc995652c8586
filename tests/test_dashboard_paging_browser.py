"""The Admin Dashboard's customer table in Chromium, paged on the server: with
more customers than a page, "Next →" swaps the table in (htmx) and puts the
position in the address, "← Previous" goes back, "Rows a page" shows 50, and
the search and sort hold on every page. Axe-clean and 390 px wide on a later
page too. A `portal serve` of its own: the test adds customers to the demo."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from tests.live_server import LiveServer, serving, sign_in
from tests.test_auto_renewal_browser import accessible_and_fits_a_phone

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
PARTNER_COMPANY = "Northwind MSP"
LAPTOP = {"width": 1280, "height": 900}
ADDED = 30


async def execute(server: LiveServer, statements: list[str]) -> None:
    if server.database_url.startswith("sqlite:///"):
        with sqlite3.connect(server.database_url.removeprefix("sqlite:///")) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    conn = await asyncpg.connect(server.database_url)
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def own_server() -> AsyncIterator[LiveServer]:
    async with serving() as server:
        partner = await server.company_id(PARTNER_COMPANY)
        now = datetime.now(UTC).isoformat()
        # Customers with names of their own ("Paging 00"…), under the partner: the
        # company trigger gives each its dashboard row.
        await execute(
            server,
            [
                "INSERT INTO company (name, kind, parent, path, created_at) "
                f"VALUES ('Paging {n:02d}', 'customer', {partner}, '', '{now}')"
                for n in range(ADDED)
            ]
            + [
                "UPDATE company SET path = (SELECT p.path FROM company AS p WHERE p.id = company.parent) "
                "|| CAST(company.id AS TEXT) || '/' WHERE path = ''"
            ],
        )
        yield server


async def test_next_and_previous_page_the_customer_table_on_the_server(browser: Browser, own_server: LiveServer):
    context = await browser.new_context(base_url=own_server.url, viewport=LAPTOP)
    page = await context.new_page()
    try:
        await sign_in(page, PARTNER)
        await page.goto("/dashboard?q=Paging&sort=name&dir=desc")
        count = page.get_by_test_id("customer-count")
        await expect(count).to_contain_text(f"1–25 of {ADDED} customers matching “Paging”")
        rows = page.get_by_test_id("customer-figures").locator("tbody tr[data-customer]")
        await expect(rows.first).to_have_attribute("data-customer", "Paging 29")
        pager = page.get_by_test_id("customer-pager")
        await expect(pager.get_by_role("link", name="← Previous")).to_have_count(0)

        await pager.get_by_role("link", name="Next →").click()
        await expect(count).to_contain_text(f"26–{ADDED} of {ADDED} customers matching “Paging”")
        await expect(page).to_have_url(re.compile(r"q=Paging.*sort=name.*dir=desc.*after=\d+"))
        await expect(rows).to_have_count(5)
        assert [await rows.nth(k).get_attribute("data-customer") for k in range(5)] == [
            f"Paging {n:02d}" for n in range(4, -1, -1)
        ]
        await accessible_and_fits_a_phone(page, "the customer table's second page")
        await page.set_viewport_size(LAPTOP)

        await pager.get_by_role("link", name="← Previous").click()
        await expect(count).to_contain_text(f"1–25 of {ADDED} customers")
        await expect(rows.first).to_have_attribute("data-customer", "Paging 29")
        await expect(page).to_have_url(re.compile(r"before=\d+"))

        await page.get_by_label("Rows a page").select_option("50")
        await expect(count).to_contain_text(f"{ADDED} customers matching “Paging”")
        await expect(rows).to_have_count(ADDED)
        await expect(page.get_by_test_id("customer-pager")).to_have_count(0)
    finally:
        await context.close()
