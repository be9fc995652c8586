"""Co-terming and one renewal date in Chromium against `portal serve` with the demo data.

A customer manager requests licenses choosing "End with the current term" and the page
says its end; a partner manager finds the order in Requested Orders, "Assign" from the
row's menu says it ends with the current term on that date, and the batch made ends
then. A partner manager opens "Renewal date" from a customer's page, sees each batch
with its charge or credit, confirms, and the flash says what changed. Both pages:
no axe-core violation at 1280 and 390 px, no sideways scroll at 390 px.

Customers: Orbit Logistics (tests/test_xss.py adds and deactivates learners there; this
order is told apart by its own purchase order number) and Greenfield School
(tests/test_billing_browser.py may add a paid batch there first: the preview is read,
not counted)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live_server import LiveServer, new_page, sign_in
from tests.test_accessibility import PHONE, axe_violations, report
from tests.test_browser_licences import moment, nav_link, query

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
COTERM_MANAGER = "manager@orbit-logistics.example"
COTERM_CUSTOMER = "Orbit Logistics"
PO = "PO-COTERM-BROWSER"
ALIGN_PARTNER = "priya.shah@harbor-it.example"
ALIGN_CUSTOMER = "Greenfield School"
DAY = r"\d\d \w{3} \d{4}"
LAPTOP = {"width": 1280, "height": 900}


async def accessible_at_both_widths(page: Page) -> None:
    """axe-core at 1280 px and at 390 px, where nothing may scroll sideways; back to 1280 px after."""
    for size in (LAPTOP, PHONE):
        await page.set_viewport_size(size)
        violations = await axe_violations(page)
        assert not violations, report({f"{page.url} at {size['width']} px": violations})
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"scrollWidth > innerWidth at 390 px: {widths}"
    await page.set_viewport_size(LAPTOP)


async def seller_bills_in_the_portal(page: Page) -> None:
    """The partner's billing settings, once read, hold its profile and prices: the pages then price the terms."""
    await page.goto("/billing/settings")
    await expect(page.locator("main")).to_be_visible()


async def request_ending_with_the_current_term(page: Page) -> str:
    """As the customer manager: Licenses → Request Licenses → "End with the current term".
    Returns the end the page said."""
    await sign_in(page, COTERM_MANAGER)
    await nav_link(page, "Licenses").click()
    await page.get_by_role("link", name="Request Licenses").click()
    await expect(page.get_by_role("heading", name="Request Licenses")).to_be_visible()
    await page.get_by_label("Number of licenses").fill("3")
    await page.get_by_label("Purchase order number (optional)").fill(PO)

    choice = page.get_by_test_id("coterm-choice")
    await expect(page.get_by_role("group", name="When the licenses end")).to_be_visible()
    await expect(choice.get_by_role("radio", name=re.compile("^12 months from now: ends"))).to_be_checked()
    current = choice.get_by_role("radio", name=re.compile("^End with the current term: ends"))
    said = re.search(
        rf"^End with the current term: ends ({DAY}), [\d,]+ days?",
        await choice.get_by_test_id("ends-with-current").inner_text(),
    )
    assert said, await choice.inner_text()
    ends = said.group(1)
    await expect(choice).to_contain_text(f"Ending with the current term, every batch renews on {ends}.")
    await current.check()
    await accessible_at_both_widths(page)

    await page.get_by_role("button", name="Save").click()
    warning = page.get_by_test_id("request-warning")
    sent = page.get_by_test_id("flash").filter(has_text="Your request for 3 licenses was sent")
    await expect(warning.or_(sent)).to_be_visible()
    if await warning.count():  # the demo's seats and waiting users may ask "Request anyway" first
        await warning.get_by_role("button", name="Request anyway").click()
    await expect(page).to_have_url(re.compile(r"/licences\?tab=orders"))
    await expect(sent).to_be_visible()
    return ends


async def test_an_order_ending_with_the_current_term_is_assigned_to_end_then(browser: Browser, live_server: LiveServer):
    company = await live_server.company_id(COTERM_CUSTOMER)
    partner = await new_page(browser, live_server)
    customer = await new_page(browser, live_server)
    try:
        await sign_in(partner, PARTNER)
        await seller_bills_in_the_portal(partner)
        ends = await request_ending_with_the_current_term(customer)

        await nav_link(partner, "Licenses").click()
        await expect(partner.get_by_role("heading", name="Requested Orders")).to_be_visible()
        ours = partner.locator("#order-results tr[data-order]").filter(has_text=PO)
        await expect(ours).to_have_count(1)
        await expect(ours).to_contain_text(COTERM_CUSTOMER)
        await expect(ours.get_by_test_id("order-coterm")).to_have_text(f"ends with the current term, {ends}")
        order_id = await ours.get_attribute("data-order")

        await ours.get_by_label("Order actions").click()
        await ours.get_by_role("button", name="Assign").click()
        row = partner.locator(f"#order-{order_id}")
        asked = row.get_by_test_id("assign-coterm")
        await expect(asked).to_contain_text(f"This order ends with the current term, on {ends}")
        await expect(asked).to_contain_text("not 12 months from now")
        await expect(asked).to_contain_text("(pro rata)")  # the seller bills in the portal: the price, pro rata
        await expect(row.get_by_test_id("assign-confirm")).to_contain_text(f"Runs until {ends}.")
        await row.get_by_role("button", name="Assign").click()

        await expect(row.locator(".status")).to_have_text("Assigned")
        await expect(partner.get_by_role("status").filter(has_text="Assigned ")).to_have_text(
            re.compile(
                rf"^Assigned 3 × .+ to {COTERM_CUSTOMER}, running until {ends}, "
                rf"ending with the current term, on {ends}\.$"
            )
        )
        # The new batch ends at the very instant of the batch ending last before it.
        made = await query(live_server, f'SELECT id, ends_at FROM licence_batch WHERE "order" = {int(order_id)}')
        assert len(made) == 1
        batch_id, batch_end = made[0][0], moment(made[0][1])
        assert f"{batch_end:%d %b %Y}" == ends
        others = await query(
            live_server, f"SELECT ends_at FROM licence_batch WHERE company = {company} AND id <> {batch_id}"
        )
        assert batch_end == max(moment(r[0]) for r in others)
    finally:
        await partner.context.close()
        await customer.context.close()


async def running_batches(live_server: LiveServer, company: int) -> dict[int, datetime]:
    """Started and not ended, as the preview lists them."""
    rows = await query(live_server, f"SELECT id, starts_at, ends_at FROM licence_batch WHERE company = {company}")
    now = datetime.now(UTC)
    return {r[0]: moment(r[2]) for r in rows if moment(r[1]) <= now < moment(r[2])}


async def test_renewal_date_aligns_the_batches_for_a_pro_rata_charge(browser: Browser, live_server: LiveServer):
    company = await live_server.company_id(ALIGN_CUSTOMER)
    before = await running_batches(live_server, company)
    # The demo's: a batch ending within 72 hours and one running for months (and perhaps a paid one).
    soonest = min(before, key=before.get)
    assert max(before.values()) > before[soonest]
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, ALIGN_PARTNER)
        await seller_bills_in_the_portal(page)
        await nav_link(page, "Company").click()
        await page.locator("#company-results").get_by_role("link", name=ALIGN_CUSTOMER, exact=True).click()
        await expect(page.get_by_role("heading", name=ALIGN_CUSTOMER, level=1)).to_be_visible()
        await page.get_by_role("link", name="Renewal date", exact=True).click()

        await expect(page.get_by_role("heading", name=f"{ALIGN_CUSTOMER}: one renewal date")).to_be_visible()
        target = f"{max(before.values()):%d %b %Y}"  # at first, the end of the term ending last
        soon_row = page.get_by_test_id(f"align-batch-{soonest}")
        await expect(soon_row).to_contain_text(f"{before[soonest]:%d %b %Y}")
        await expect(soon_row).to_contain_text(target)
        await expect(soon_row.get_by_role("cell", name=re.compile(r"^\+\d[\d,]*$"))).to_be_visible()  # days added
        await expect(soon_row.get_by_role("cell", name=re.compile(r"^charge \S+"))).to_be_visible()
        total = page.get_by_test_id("align-total")
        said = re.search(
            rf"^(\d+) (batch|batches) will end on ({DAY}): charge (.+?), "
            r"pro rata at the yearly price of a standard user\.",
            " ".join((await total.inner_text()).split()),
        )
        assert said, await total.inner_text()
        moving, batches, day, charge = int(said.group(1)), said.group(2), said.group(3), said.group(4)
        assert day == target and moving >= 1
        await accessible_at_both_widths(page)

        await page.get_by_role("button", name="Confirm").click()
        await expect(page).to_have_url(f"{live_server.url}/companies/{company}")
        await expect(page.get_by_test_id("flash")).to_contain_text(
            f"{moving} {batches} of {ALIGN_CUSTOMER} now end on {target}; charge {charge}."
        )
        after = await running_batches(live_server, company)
        assert after[soonest] == max(before.values())
        assert set(after.values()) == {max(before.values())}
    finally:
        await page.context.close()
