"""Renewal by CSV in Chromium against `portal serve` with the demo data: a
customer manager takes a semicolon-separated, BOM-prefixed Windows-1252 file
"from Excel", sees the e-mail column guessed, the two counts and a reason,
clicks "Renew Licences", sees the progress bar finish, and finds the learners
Active with the new end date.

The customer is not Brightpath Dental (the licence guide's browser test renews
all of its expired users): one with two free seats and expired learners, found
in the server's database."""

from __future__ import annotations

import codecs
import re
import sqlite3
from datetime import UTC, datetime

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from tests.live_server import LiveServer, new_page, sign_in

pytestmark = pytest.mark.browser


async def query(live_server: LiveServer, sql: str) -> list[tuple]:
    if live_server.database_url.startswith("sqlite:///"):
        with sqlite3.connect(live_server.database_url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql).fetchall()
    conn = await asyncpg.connect(live_server.database_url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def moment(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).astimezone(UTC)


async def customer_to_renew(live_server: LiveServer) -> tuple[str, list[tuple[str, str]], int]:
    """(its manager's e-mail, three expired learners (name, e-mail), its free seats) of a customer
    whose first running batch with room has 2 free seats."""
    now = datetime.now(UTC)
    batches = await query(
        live_server,
        "SELECT licence_batch.company, seats - allocated, starts_at, licence_batch.ends_at FROM licence_batch "
        "JOIN company ON company.id = licence_batch.company WHERE company.name <> 'Brightpath Dental'",
    )
    running = {}
    for company, free, starts, ends in sorted(batches, key=lambda b: moment(b[3])):
        if moment(starts) <= now < moment(ends) and free > 0 and company not in running:
            running[company] = free
    users = await query(
        live_server, "SELECT company, name, email, role, licence_ends_at FROM portal_user WHERE active ORDER BY id"
    )
    for company, free in sorted(running.items()):
        expired = [
            (name, email)
            for c, name, email, role, ends in users
            if c == company and role == "learner" and ends is not None and moment(ends) <= now
        ]
        managers = [email for c, _, email, role, _ in users if c == company and role == "manager"]
        if free == 2 and len(expired) >= 3 and managers:
            return managers[0], expired[:3], free
    pytest.fail("the demo data has no customer with two free seats and three expired learners")


async def test_renewal_by_csv_from_excel(browser: Browser, live_server: LiveServer):
    manager, (first, second, third), free = await customer_to_renew(live_server)
    lines = [
        "Name;E-mail;Manager e-mail",
        f"{first[0]};{first[1].upper()} ;{manager}",
        f"{second[0]};{second[0]} <{second[1]}>;{manager}",
        f"{first[0]};{first[1]};{manager}",  # listed twice
        f"Zoë Ünknown;zoe.unknown@nowhere.example;{manager}",  # not a user of this company
        f"{third[0]};{third[1]};{manager}",  # past the two free seats
        "",
    ]
    excel = codecs.BOM_UTF8 + "\r\n".join(lines).encode("cp1252")

    page = await new_page(browser, live_server)
    await sign_in(page, manager)
    await page.get_by_role("navigation").get_by_role("link", name="Licenses", exact=True).click()
    await page.get_by_role("tab", name=re.compile(r"^\s*Expired Licenses")).click()
    await page.get_by_role("link", name="Select Users by CSV").click()
    await expect(page.get_by_role("heading", name="Import Licence Renewal")).to_be_visible()
    await page.get_by_label("Your User spreadsheet file").set_input_files(
        files=[{"name": "from-excel.csv", "mimeType": "text/csv", "buffer": excel}]
    )
    await page.get_by_role("button", name="Upload").click()

    column = page.get_by_label("The spreadsheet column containing 'Email'")
    await expect(column).to_have_value("1")  # "E-mail", not the manager's column
    await expect(column.locator("option:checked")).to_have_text("E-mail")
    await expect(page.get_by_test_id("first-rows")).to_contain_text("Zoë Ünknown")
    await expect(page.get_by_test_id("renew-count")).to_have_text("2")
    await expect(page.get_by_text("users identified for renewal")).to_be_visible()
    # People, not rows: the repeated address is one row more, no one more.
    await expect(page.get_by_test_id("not-renewed-count")).to_have_text("2")
    await expect(page.get_by_test_id("not-renewed-rows")).to_have_text("3")
    await expect(page.get_by_test_id("not-renewed-csv")).to_be_visible()
    twice = page.get_by_test_id("reason-duplicate")
    await expect(twice.locator("summary")).to_contain_text("Listed twice: 1")
    await twice.locator("summary").click()
    await expect(twice.locator("tbody tr")).to_have_count(1)
    await expect(twice.locator("tbody tr")).to_contain_text(first[1])
    await expect(page.get_by_test_id("reason-no_seat").locator("summary")).to_contain_text(
        f"No free seat: 1 ({free} seats free)"
    )
    await expect(page.get_by_test_id("reason-unknown").locator("summary")).to_contain_text(
        "Not a user of this company: 1"
    )

    # At 390 px wide neither the preview nor the upload page scrolls sideways (wide tables scroll in their box).
    await page.set_viewport_size({"width": 390, "height": 800})
    preview_url = page.url
    for url in (preview_url, preview_url.rsplit("/", 1)[0]):
        await page.goto(url)
        widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], (url, widths)
    await page.goto(preview_url)
    await page.set_viewport_size({"width": 1280, "height": 900})

    await page.get_by_role("button", name="Renew Licences").click()
    result = page.get_by_test_id("import-result")
    await expect(result).to_be_visible()
    await expect(result.locator("progress")).to_have_attribute("value", "100")
    await expect(result.get_by_test_id("renew-count")).to_have_text("2")
    await expect(result).to_contain_text("users renewed")

    ends = {
        email: moment(end)
        for email, end in await query(live_server, "SELECT email, licence_ends_at FROM portal_user")
        if email in (first[1], second[1])
    }
    assert len(set(ends.values())) == 1 and min(ends.values()) > datetime.now(UTC)
    new_end = next(iter(ends.values())).strftime("%d %b %Y")
    await result.get_by_role("link", name="Active licenses").click()
    rows = page.locator("#allocate-form tbody tr")
    for _, email in (first, second):
        row = rows.filter(has=page.get_by_role("cell", name=email, exact=True))
        await expect(row).to_have_count(1)
        await expect(row.locator(".status")).to_have_text("Active")
        await expect(row.locator("td").last).to_have_text(new_end)
    await page.context.close()
