"""The licence guide in Chromium, end to end against `portal serve` with the demo
data: a customer manager requests 25 licences → a partner manager filters
Requested Orders and assigns the order → in Manage Company, Expired Licenses →
Select All → Allocate Licenses → the users show Active with the new end date.

Two sign-ins in all: the server allows 10 a minute per address, and the other
browser tests of the session sign in too."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import asyncpg
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


async def query(live_server: LiveServer, sql: str) -> list[tuple]:
    """Read the server's own database: what the page says is checked against what was written."""
    if live_server.database_url.startswith("sqlite:///"):
        with sqlite3.connect(live_server.database_url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql).fetchall()
    conn = await asyncpg.connect(live_server.database_url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def moment(value) -> datetime:
    """A timestamp as either engine returns it (SQLite: ISO text)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value).astimezone(UTC)


async def batch_count(live_server: LiveServer) -> int:
    return (await query(live_server, "SELECT COUNT(*) FROM licence_batch"))[0][0]


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
    # The quantity starts at the suggestion, and the page says why: the demo's Brightpath Dental
    # holds more free seats than it has users waiting.
    await expect(page.get_by_test_id("suggestion")).to_contain_text("Suggested: 1.")
    await expect(page.get_by_label("Number of licenses")).to_have_value("1")
    await page.get_by_label("Number of licenses").fill(str(QUANTITY))
    await page.get_by_role("button", name="Save").click()

    # A request is waiting already (the demo's), and the free seats cover everyone: warned, nothing sent yet.
    warning = page.get_by_test_id("request-warning")
    await expect(warning).to_contain_text(f"{CUSTOMER_COMPANY} already has a request waiting")
    await expect(warning).to_contain_text("free seats, enough for the")
    await expect(page.get_by_test_id("flash")).to_have_count(0)
    await warning.get_by_role("button", name="Request anyway").click()

    await expect(page).to_have_url(re.compile(r"/licences\?tab=orders"))
    await expect(licence_tab(page, "Orders")).to_have_attribute("aria-selected", "true")
    await expect(
        page.get_by_role("status").filter(has_text=f"Your request for {QUANTITY} licenses was sent")
    ).to_be_visible()
    mine = page.locator("#licence-tab tbody tr").filter(has_text=CUSTOMER_NAME)
    await expect(mine).to_have_count(1)
    await expect(mine.get_by_role("cell", name=str(QUANTITY), exact=True)).to_be_visible()
    await expect(mine.locator(".status")).to_have_text("Requested")


async def assign_order(page: Page, live_server: LiveServer, customer_id: int) -> str:
    """Step 2, as the partner manager: filter Requested Orders by customer and
    status, then "Assign" from the row's three-dots menu, confirmed. Returns the
    end date the confirmation said the licences would get."""
    await sign_in(page, PARTNER)
    await nav_link(page, "Licenses").click()
    await expect(page.get_by_role("heading", name="Requested Orders")).to_be_visible()
    # Survives htmx swaps, not a page load: proves the filters never reload the page.
    await page.evaluate("window.__sameDocument = true")

    await add_filter(page, "Customer", "customer")
    await page.locator("#filter-fields select[name=customer]").select_option(label=CUSTOMER_COMPANY)
    # hx-push-url changes the address only once the swap is done.
    await page.wait_for_url(re.compile(rf"/licences/orders\?(.*&)?customer={customer_id}(&|$)"))

    # Status Requested is on from the start: a chip, kept in the URL with the customer.
    await expect(page.locator("#filter-fields select[name=status]")).to_have_value("requested")
    await page.wait_for_url(
        re.compile(rf"/licences/orders\?(?=(.*&)?customer={customer_id}(&|$))(?=(.*&)?status=requested(&|$))")
    )
    # "Add Filter" → Status again does not add a second chip: it goes to the one there.
    await page.get_by_test_id("add-filter").click()
    await page.locator("#order-filters .menu-items").get_by_role("button", name="Status", exact=True).click()
    await expect(page.locator("#filter-fields select[name=status]")).to_be_focused()
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

    batches_before = await batch_count(live_server)
    asked_at = datetime.now(UTC)
    await ours.get_by_label("Order actions").click()
    await ours.get_by_role("button", name="Assign").click()
    # Assign asks first, in the row's place: customer, quantity, product and the end date it will give.
    row = page.locator(f"#order-{order_id}")
    asked = row.get_by_test_id("assign-confirm")
    await expect(asked).to_contain_text(f"Assign {QUANTITY} × Premium to {CUSTOMER_COMPANY}?")
    ends = re.search(r"run until (\d\d \w{3} \d{4})", await asked.inner_text()).group(1)
    assert ends == day(datetime.now(UTC) + relativedelta(months=12)) or ends == day(asked_at + relativedelta(months=12))
    assert await batch_count(live_server) == batches_before, "asking assigned something"
    await row.get_by_role("button", name="Assign").click()
    # The row is swapped in place (outerHTML): find it again by its id.
    await expect(row.locator(".status")).to_have_text("Assigned")
    await expect(row.get_by_role("alert")).to_have_count(0)
    await expect(page.get_by_role("status").filter(has_text="Assigned ")).to_have_text(
        f"Assigned {QUANTITY} × Security Awareness Training — Premium to {CUSTOMER_COMPANY}, running until {ends}."
    )
    assert await page.evaluate(f"document.getElementById('order-{order_id}').contains(document.activeElement)")
    assert await page.evaluate("window.__sameDocument === true"), "Assign reloaded the page"
    assert await batch_count(live_server) == batches_before + 1
    return ends


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
        await assign_order(page, live_server, customer_id)
        after_assign = datetime.now(UTC)
        # The batch runs 12 months from the instant of "Assign"; a midnight may pass in between.
        new_end_days = {day(before_assign + relativedelta(months=12)), day(after_assign + relativedelta(months=12))}
        assigned_days = {day(before_assign), day(after_assign)}

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
            (await expired_rows.nth(i).locator("td").nth(1).inner_text()).strip()
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
            has_text=re.compile(
                rf": {QUANTITY} free of {QUANTITY}, assigned ({'|'.join(map(re.escape, assigned_days))}), "
                rf"ends ({'|'.join(map(re.escape, new_end_days))})$"
            )
        )
        await expect(ours).to_have_count(1)
        assigned, new_end = re.search(r"assigned (.+), ends (.+)$", await ours.inner_text()).groups()
        await take_from.select_option(await ours.get_attribute("value"))

        await confirm.get_by_role("button", name="Allocate Licenses").click()
        result = page.get_by_test_id("flash")
        await expect(result).to_have_text(
            f"{expired_count} users renewed until {new_end} from the batch assigned {assigned}."
        )
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


MANUAL_CUSTOMER = "Bluewave Marine"  # demo: eleven expired, a batch of 8 with 2 free; no other browser test uses it
MANUAL_MANAGER = "manager@bluewave-marine.example"


async def add_running_batch(live_server: LiveServer, company: int, seats: int) -> None:
    """A second running batch for the customer, assigned yesterday, written into the
    server's database: it runs longer than the demo's, so it is the default."""
    now = datetime.now(UTC)
    starts, ends = now - relativedelta(days=1), now - relativedelta(days=1) + relativedelta(months=12)
    order = (
        "INSERT INTO licence_order (company, company_path, product, quantity, status, requested_at, decided_at) "
        "SELECT {c}, '', id, {n}, 'assigned', {t}, {t} FROM product WHERE code = 'sat-premium'"
    )
    batch = (
        'INSERT INTO licence_batch ("order", company, product, seats, allocated, starts_at, ends_at) '
        "SELECT MAX(id), {c}, MAX(product), {n}, 0, {s}, {e} FROM licence_order WHERE company = {c}"
    )
    if live_server.database_url.startswith("sqlite:///"):
        with sqlite3.connect(live_server.database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(order.format(c=company, n=seats, t="?"), (starts.isoformat(), starts.isoformat()))
            conn.execute(batch.format(c=company, n=seats, s="?", e="?"), (starts.isoformat(), ends.isoformat()))
        return
    conn = await asyncpg.connect(live_server.database_url)
    try:
        async with conn.transaction():
            await conn.execute(order.format(c=company, n=seats, t="$1"), starts)
            await conn.execute(batch.format(c=company, n=seats, s="$1", e="$2"), starts, ends)
    finally:
        await conn.close()


async def test_select_users_manually_from_the_batch_chosen(browser: Browser, live_server: LiveServer):
    """ "Select users Manually": "Take seats from" offers the running batches with free seats,
    the one that runs longest chosen; choosing another says the end date it gives, and the
    users ticked get exactly that end, from that batch."""
    company = await live_server.company_id(MANUAL_CUSTOMER)
    await add_running_batch(live_server, company, 20)
    batches = await query(
        live_server,
        f"SELECT id, seats, allocated, starts_at, ends_at FROM licence_batch WHERE company = {company} "
        "ORDER BY ends_at",
    )
    now = datetime.now(UTC)
    running = [(i, seats, used, moment(s), moment(e)) for i, seats, used, s, e in batches if moment(e) > now]
    (small_id, small_seats, small_used, small_starts, small_ends), longest = running[0], running[-1]
    assert small_seats - small_used == 2 and longest[1] == 20, running

    page = await new_page(browser, live_server)
    try:
        await sign_in(page, MANUAL_MANAGER)
        await nav_link(page, "Licenses").click()
        await expect(licence_tab(page, "Expired Licenses")).to_have_attribute("aria-selected", "true")
        await expect(page.locator("#allocate-form input[type=checkbox]")).to_have_count(0)  # not yet selecting

        await page.get_by_role("link", name="Select users Manually").click()
        panel = page.get_by_test_id("manual-allocation")
        take_from = panel.get_by_label("Take seats from")
        await expect(take_from.locator("option")).to_have_count(2)
        await expect(take_from.locator("option:checked")).to_have_text(
            f"Security Awareness Training — Premium: 20 free of 20, assigned {day(longest[3])}, ends {day(longest[4])}"
        )
        await expect(panel.get_by_test_id("manual-ends")).to_have_text(day(longest[4]))

        await take_from.select_option(str(small_id))
        await expect(panel.get_by_test_id("manual-ends")).to_have_text(day(small_ends))

        # The header's box ticks this page's rows and unticks them again.
        boxes = page.locator("#allocate-form tbody input[name=user_id]")
        page_box = page.get_by_label("Select all users on this page")
        await page_box.check()
        for i in range(await boxes.count()):
            await expect(boxes.nth(i)).to_be_checked()
        await page_box.uncheck()
        for i in range(await boxes.count()):
            await expect(boxes.nth(i)).not_to_be_checked()

        rows = page.locator("#allocate-form tbody tr")
        chosen = [(await rows.nth(i).locator("td").nth(2).inner_text()).strip() for i in (0, 1)]
        await boxes.nth(0).check()
        await boxes.nth(1).check()
        await expect(page_box).to_have_js_property("indeterminate", True)
        await page.get_by_role("button", name="Allocate Licenses").click()

        await expect(page.get_by_test_id("flash")).to_have_text(
            f"2 users renewed until {day(small_ends)} from the batch assigned {day(small_starts)}."
        )
        in_list = ", ".join(f"'{email}'" for email in chosen)
        ends = await query(live_server, f"SELECT licence_ends_at FROM portal_user WHERE email IN ({in_list})")
        assert [moment(e) for (e,) in ends] == [small_ends, small_ends]
        held = await query(
            live_server,
            'SELECT COUNT(*) FROM allocation JOIN portal_user ON portal_user.id = allocation."user" '
            f"WHERE allocation.batch = {small_id} AND portal_user.email IN ({in_list})",
        )
        assert held == [(2,)]
    finally:
        await page.context.close()


async def test_removing_the_status_chip_lists_every_status_and_the_url_says_so(browser: Browser, live_server):
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, PARTNER)
        await nav_link(page, "Licenses").click()
        rows = page.locator("#order-results tr[data-order]")
        await expect(rows.first).to_be_visible()
        statuses = await rows.locator(".status").all_inner_texts()
        assert set(statuses) == {"Requested"}, statuses
        await page.get_by_label("Remove filter Status").click()
        await page.wait_for_url(re.compile(r"/licences/orders\?status=any$"))
        await expect(page.locator("#filter-fields .filter")).to_have_count(0)
        # The demo has a cancelled and a declined order: every status is listed now.
        await expect(rows.locator(".status", has_text="Declined")).not_to_have_count(0)
        await expect(rows.locator(".status", has_text="Cancelled")).not_to_have_count(0)
        # A reload (a shared link) keeps the meaning: no chip, every status.
        await page.reload()
        await expect(page.locator("#filter-fields .filter")).to_have_count(0)
        await expect(rows.locator(".status", has_text="Declined")).not_to_have_count(0)
        # Added back, the chip replaces "every status": one status in the URL.
        await add_filter(page, "Status", "status")
        await page.locator("#filter-fields select[name=status]").select_option("declined")
        await page.wait_for_url(re.compile(r"/licences/orders\?status=declined$"))
        assert set(await rows.locator(".status").all_inner_texts()) == {"Declined"}
    finally:
        await page.context.close()
