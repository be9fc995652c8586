"""Billing in Chromium, as the subscription guide walks it, against `portal serve`
with the demo data: a customer buys Pro with 20 extra users, paying online with the
test card, and sees the licence batch on its Licenses page; adds users mid-term and
sees the pro-rata charge; cancels from "Subscriptions" and sees the end date.
Another customer pays by invoice; partner staff record a bank transfer; its seats
appear. Then every billing page: no axe-core violation, no sideways scroll at 390 px.

Customers of their own (Copperleaf Accounting, Greenfield School): the other browser tests
count the demo's batches and orders of Brightpath Dental, Cedar & Pine Law and
Orbit Logistics, and allocate from Bluewave Marine's."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from portal.demo_data import DEMO_PASSWORD
from portal.domain.billing import money
from tests.live_server import LiveServer, new_page, sign_in
from tests.test_accessibility import PHONE, axe_violations, report
from tests.test_keyboard import tab_until

pytestmark = pytest.mark.browser

ONLINE_CUSTOMER = "Copperleaf Accounting"
ONLINE_MANAGER = "manager@copperleaf-accounting.example"
INVOICE_CUSTOMER = "Greenfield School"
INVOICE_MANAGER = "manager@greenfield-school.example"
PARTNER = "alex.morgan@northwind-msp.example"
# Pro $6,000.00 a year + 20 extra users × $30.00 × 12 months.
PRO_20_TOTAL = "$13,200.00 USD"
SCREENSHOT = "/tmp/billing.png"


def nav_link(page: Page, name: str):
    return page.get_by_role("navigation").get_by_role("link", name=name, exact=True)


def day(moment: datetime) -> str:
    return moment.strftime("%d %b %Y")  # the templates' `day` filter


def flash(page: Page):
    return page.get_by_test_id("flash")


async def batch_row(page: Page, seats: int, ends: str):
    """A row of the Licenses page's batches: bought `seats`, ending `ends`."""
    rows = page.get_by_test_id("batches").locator("tbody tr").filter(has_text=ends)
    return rows.filter(has=page.get_by_role("cell", name=str(seats), exact=True))


async def buy_pro_online(page: Page) -> str:
    """Billing → Buy a license → Pro, 20 extra users, Pay Online → the price → the test card → Pay Online."""
    await nav_link(page, "Billing").click()
    await expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    await page.get_by_role("link", name="Buy a license").first.click()
    await page.get_by_role("radio", name=re.compile(r"^Pro: ")).check()
    await page.get_by_label(re.compile(r"^Extra standard users")).fill("20")
    await page.get_by_role("radio", name=re.compile(r"^Pay Online")).check()
    await page.get_by_role("button", name="See the price").click()

    quote = page.get_by_test_id("quote")
    await expect(quote.get_by_test_id("total")).to_have_text(PRO_20_TOTAL)
    # The card goes into the test processor's own page, framed here; the quote page's form has no card field.
    await expect(quote.locator('input[name="card_number"]')).to_have_count(0)
    card = page.frame_locator('[data-testid="card-frame"]')
    await expect(card.get_by_test_id("test-mode")).to_have_text("Test mode: use card 4242 4242 4242 4242")
    await card.get_by_label("Card number").fill("4242 4242 4242 4242")
    await card.get_by_label("Expiry month").fill("12")
    await card.get_by_label("Expiry year").fill("2040")
    await card.get_by_label("Security code (CVC)").fill("123")
    await card.get_by_role("button", name="Use this card").click()
    await expect(quote.get_by_role("status")).to_have_text("Visa ending 4242, expires 12/40: ready to use.")
    await page.get_by_label("Billing name").fill("Copperleaf Accounting Ltd")
    await page.get_by_label("Billing e-mail").fill("accounts@copperleaf-accounting.example")
    await page.get_by_label("Address").fill("4 Quay Street\nBristol")
    await page.get_by_label("Country").select_option("GB")
    before = datetime.now(UTC)
    await quote.get_by_role("button", name="Pay Online").click()
    after = datetime.now(UTC)

    ends = {day(money.term_end(before)), day(money.term_end(after))}
    message = flash(page)
    await expect(message).to_contain_text(f"Paid {PRO_20_TOTAL} by card")
    found = re.search(r"30 licenses are ready to allocate, until (.+)\.$", await message.inner_text())
    assert found and found.group(1) in ends, await message.inner_text()
    await expect(page.get_by_test_id("seats")).to_contain_text("30")
    return found.group(1)


async def add_users(page: Page, end: str) -> None:
    """Billing → "Add users" → 5 standard user credits → the pro-rata price and the users
    after → "Add users"; the 5 new seats end with the term. Keyboard only; each page
    passes axe and fits a phone."""
    await page.locator("body").focus()
    await tab_until(page, 'a[href$="/billing/add-users"]')
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Add users")).to_be_visible()
    await expect(page.get_by_test_id("held")).to_contain_text("30 standard users")
    assert await _fits(page) == ([], True)
    # Sent with nothing to add: refused, said at the top and beside the field.
    await tab_until(page, 'input[name="standard_users"]')
    await page.keyboard.press("Enter")
    await expect(page.locator(".error-summary")).to_contain_text("Enter how many users to add: 1 or more.")
    assert await _fits(page) == ([], True)
    await page.locator("body").focus()
    await tab_until(page, 'input[name="standard_users"]')
    await page.keyboard.press("Control+A")
    await page.keyboard.type("5")
    before = datetime.now(UTC)
    await page.keyboard.press("Enter")  # sends the form: the price, nothing bought yet
    quote = page.get_by_test_id("quote")
    await expect(quote).to_contain_text(f"until {end}")
    await expect(page.get_by_test_id("after")).to_contain_text("After this: 35 standard users and 0 read-only users")
    total = (await quote.get_by_test_id("total").inner_text()).strip()
    # 5 users × $360.00 a year for the days left of a term bought moments ago: all of them,
    # or one fewer if a midnight passed since.
    term_end = money.term_end(before)
    expected = {
        money.format_money(money.prorate(180_000, before, term_end, at), "USD") for at in (before, datetime.now(UTC))
    }
    assert total in expected | {"$1,800.00 USD"}, total
    assert await _fits(page) == ([], True)
    await tab_until(page, 'button[data-testid="confirm"]')
    await expect(page.locator(":focus")).to_have_text("Add users")
    await page.keyboard.press("Enter")
    await expect(flash(page)).to_contain_text(f"Added 5 standard users: charged {total} pro rata")
    await expect(page.get_by_test_id("seats")).to_contain_text("35")


async def cancel(page: Page, end: str) -> None:
    """Billing → "Subscriptions" → Cancel (confirmed): the end date is said before and after."""
    await page.get_by_role("link", name="Subscriptions", exact=True).click()
    await expect(page.get_by_test_id("end-date")).to_have_text(end)
    await page.get_by_role("button", name="Cancel", exact=True).click()
    asked = page.get_by_role("dialog")
    await expect(asked).to_contain_text(f"The license runs until {end}")
    assert await _fits(page) == ([], True)
    await asked.get_by_role("button", name="Keep it").click()
    await expect(asked).to_be_hidden()
    await page.get_by_role("button", name="Cancel", exact=True).click()
    await asked.get_by_role("button", name="Stop automatic renewal").click()
    await expect(flash(page)).to_have_text(
        f"Cancelled: nothing renews. The license runs until {end}; you can undo this before then."
    )
    await expect(page.get_by_test_id("end-date")).to_have_text(end)
    await expect(page.get_by_role("button", name="Undo cancellation")).to_be_visible()


async def test_buy_online_upgrade_cancel_and_pay_by_invoice(browser: Browser, live_server: LiveServer):
    page = await new_page(browser, live_server)
    try:
        await sign_in(page, ONLINE_MANAGER)
        end = await buy_pro_online(page)
        await nav_link(page, "Licenses").click()
        await expect(await batch_row(page, 30, end)).to_have_count(1)

        await nav_link(page, "Billing").click()
        await add_users(page, end)
        await nav_link(page, "Licenses").click()
        await expect(await batch_row(page, 30, end)).to_have_count(1)
        await expect(await batch_row(page, 5, end)).to_have_count(1)

        await nav_link(page, "Billing").click()
        await cancel(page, end)
        await nav_link(page, "Billing").click()
        await expect(page.get_by_test_id("renewal")).to_contain_text(f"{end} (cancelled: does not renew)")
        await refused_address(page, page.url.split("?")[0].removesuffix("/"))
    finally:
        await page.context.close()

    customer = await new_page(browser, live_server)
    partner = await new_page(browser, live_server)
    try:
        await sign_in(customer, INVOICE_MANAGER)
        await nav_link(customer, "Billing").click()
        await customer.get_by_role("link", name="Buy a license").first.click()
        await customer.get_by_role("radio", name=re.compile(r"^Lite: ")).check()
        await customer.get_by_label(re.compile(r"^Extra standard users")).fill("3")
        await customer.get_by_role("radio", name=re.compile(r"^Pay by Invoice")).check()
        await customer.get_by_role("button", name="See the price").click()
        # Lite $3,000.00 + 3 × $360.00
        await expect(customer.get_by_test_id("total")).to_have_text("$4,080.00 USD")
        await expect(customer.get_by_test_id("card-frame")).to_have_count(0)
        await customer.get_by_role("button", name="Pay by Invoice").click()
        await expect(flash(customer)).to_contain_text("for $4,080.00 USD was issued")
        await expect(flash(customer)).to_contain_text("The licenses are assigned once it is paid.")
        number = re.search(r"Invoice (INV-\d+)", await flash(customer).inner_text()).group(1)

        await sign_in(partner, PARTNER)
        await nav_link(partner, "Billing").click()
        await partner.get_by_role("link", name="Invoices to record payment on").click()
        row = partner.locator("tr[data-invoice]").filter(has_text=number)
        await expect(row).to_contain_text(INVOICE_CUSTOMER)
        await row.get_by_role("link", name=re.compile("^Record payment")).click()
        await partner.get_by_label("Paid by").select_option(label="Bank transfer")
        await partner.get_by_label(re.compile(r"^Reference")).fill("TRF-0042")
        paid_at = datetime.now(UTC)
        await partner.get_by_role("button", name="Record payment").click()
        await expect(flash(partner)).to_contain_text(f"Payment of $4,080.00 USD recorded on invoice {number}.")
        await expect(flash(partner)).to_contain_text("8 licenses assigned")
        await expect(partner.get_by_test_id("invoice-status")).to_have_text("Paid")

        ends = {day(money.term_end(paid_at)), day(money.term_end(datetime.now(UTC)))}
        await nav_link(customer, "Licenses").click()
        # The batch the payment assigned: 8 seats bought, ending 12 months after the payment.
        ending = re.compile("|".join(map(re.escape, ends)))
        rows = customer.get_by_test_id("batches").locator("tbody tr").filter(has_text=ending)
        await expect(rows.first).to_be_visible()
        bought = [(await rows.nth(i).locator("td").nth(1).inner_text()).strip() for i in range(await rows.count())]
        assert "8" in bought, bought
        await customer.screenshot(path=SCREENSHOT, full_page=True)
    finally:
        await customer.context.close()
        await partner.context.close()


async def _signed_in(browser: Browser, live_server: LiveServer, email: str) -> BrowserContext:
    context = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, email)
    await page.close()
    return context


async def _check(context: BrowserContext, paths: list[str]) -> tuple[dict, dict]:
    """axe-core's violations and the pages wider than a phone, by path."""
    page = await context.new_page()
    found, wide = {}, {}
    try:
        for path in paths:
            await page.set_viewport_size({"width": 1280, "height": 900})
            response = await page.goto(path)
            assert response is not None and response.ok, (path, response and response.status)
            if violations := await axe_violations(page):
                found[path] = violations
            await page.set_viewport_size(PHONE)
            widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if widths[0] > widths[1]:
                wide[path] = tuple(widths)
    finally:
        await page.close()
    return found, wide


async def test_billing_pages_pass_axe_and_fit_a_phone(browser: Browser, live_server: LiveServer):
    """Every billing page, with something on it: a customer with an online subscription
    (Copperleaf Accounting, if the test above ran; otherwise its empty pages) and the partner's."""
    company = await live_server.company_id(ONLINE_CUSTOMER)
    base = f"/companies/{company}/billing"
    customer = await _signed_in(browser, live_server, ONLINE_MANAGER)
    partner = await _signed_in(browser, live_server, PARTNER)
    try:
        page = await customer.new_page()
        await page.goto(base)
        invoice = page.locator("tr[data-invoice] a").first
        invoice_path = await invoice.get_attribute("href") if await invoice.count() else None
        subscribed = await page.get_by_role("link", name="Upgrade").count() > 0
        await page.close()
        customer_paths = [
            base,
            f"{base}/subscriptions",
            f"{base}/buy",
            f"{base}/buy/quote?tier=pro&extra_users=20&read_only_users=2&addons=onboarding&method=online",
            f"{base}/buy/quote?tier=lite&extra_users=0&read_only_users=0&method=invoice",
            f"{base}/account",
        ]
        if subscribed:
            customer_paths += [
                f"{base}/change",
                f"{base}/change/quote?tier=pro&extra_users=40&read_only_users=1",
                f"{base}/add-users",
                f"{base}/add-users/quote?standard_users=3&read_only_users=1",
            ]
        if invoice_path:
            customer_paths.append(invoice_path)
        partner_paths = ["/billing", "/billing/invoices", "/billing/invoices?status=paid", "/billing/settings"]
        if invoice_path:
            partner_paths.append(invoice_path)

        found, wide = await _check(customer, customer_paths)
        partner_found, partner_wide = await _check(partner, partner_paths)
    finally:
        await customer.close()
        await partner.close()
    found |= {f"{path} (partner)": v for path, v in partner_found.items()}
    wide |= {f"{path} (partner)": w for path, w in partner_wide.items()}
    assert not found, report(found)
    assert not wide, f"scrollWidth > innerWidth at 390 px: {wide}"


async def _fits(page: Page) -> tuple[list, bool]:
    """axe-core's violations at desktop width, and whether the page fits a phone."""
    await page.set_viewport_size({"width": 1280, "height": 900})
    violations = await axe_violations(page)
    await page.set_viewport_size(PHONE)
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    await page.set_viewport_size({"width": 1280, "height": 900})
    return violations, widths[0] <= widths[1]


async def refused_address(page: Page, base: str) -> None:
    """The billing address refused: the error summary over the form passes axe and fits a
    phone, and what was typed is still there, the country chosen from the list by
    keyboard too; corrected, it is saved and Billing names the country."""
    await page.goto(f"{base}/account")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Save the billing address"))
    await form.locator('input[name="billing_email"]').fill("nobody")
    await form.locator('input[name="billing_email"]').focus()
    await tab_until(page, 'form[action$="/address"] select[name="country"]')
    await page.keyboard.type("Germany")  # a closed list picks the option typed
    await expect(form.get_by_label("Country")).to_have_value("DE")
    await tab_until(page, 'form[action$="/address"] button')
    await page.keyboard.press("Enter")
    await expect(page.locator(".error-summary")).to_be_visible()
    await expect(page.locator('input[name="billing_email"]')).to_have_value("nobody")
    await expect(page.locator('select[name="country"]')).to_have_value("DE")
    assert await _fits(page) == ([], True)
    form = page.locator("form").filter(has=page.get_by_role("button", name="Save the billing address"))
    await form.locator('input[name="billing_email"]').fill("accounts@copperleaf-accounting.example")
    await form.get_by_role("button", name="Save the billing address").click()
    await expect(flash(page)).to_contain_text("Billing address saved")
    await expect(page.get_by_test_id("billing-address")).to_contain_text("Germany")


# Summit Secure's customer: no other browser test touches it.
ADDONS_CUSTOMER = "Alpine Outfitters"
ADDONS_MANAGER = "manager@alpine-outfitters.example"
VIEWER = "viewer@alpine-outfitters.example"


async def _invoice_link(page: Page, number: str) -> str:
    link = page.locator("tr[data-invoice]").filter(has_text=number).get_by_role("link").first
    href = await link.get_attribute("href")
    assert href, number
    return href


async def _buy_with_addon_by_invoice(page: Page) -> str:
    """Lite, 1 read-only user and the onboarding course, by invoice; returns the invoice's page."""
    await nav_link(page, "Billing").click()
    await page.get_by_role("link", name="Buy a license").first.click()
    await page.get_by_role("radio", name=re.compile(r"^Lite: ")).check()
    await page.get_by_label(re.compile(r"^Read-only users")).fill("1")
    await page.get_by_role("checkbox", name=re.compile(r"^Onboarding")).check()
    await page.get_by_role("radio", name=re.compile(r"^Pay by Invoice")).check()
    await page.get_by_role("button", name="See the price").click()
    await page.get_by_role("button", name="Pay by Invoice").click()
    await expect(flash(page)).to_contain_text("was issued")
    number = re.search(r"Invoice (INV-\d+)", await flash(page).inner_text()).group(1)
    return await _invoice_link(page, number)


async def _add_read_only_manager(page: Page, browser: Browser, live_server: LiveServer, company: int) -> None:
    """Add User → Read-only manager → the one-time link → Set password (the demo's, to sign in with)."""
    await page.goto(f"/companies/{company}/users/new")
    await page.get_by_label("Name").fill("Vera Viewer")
    await page.get_by_label("E-mail").fill(VIEWER)
    await page.get_by_role("radio", name="Read-only manager").check()
    await page.get_by_role("button", name="Save").click()
    link = await page.get_by_test_id("set-password-link").input_value()
    viewer = await new_page(browser, live_server)
    try:
        await viewer.goto(link)
        await viewer.get_by_label("New password").fill(DEMO_PASSWORD)
        await viewer.get_by_label("Repeat it").fill(DEMO_PASSWORD)
        await viewer.get_by_role("button", name="Set password").click()
        await expect(viewer.get_by_role("heading", name="Set your password")).to_have_count(0)
    finally:
        await viewer.context.close()


async def test_add_ons_read_only_note_and_void_pass_axe_and_fit_a_phone(browser: Browser, live_server: LiveServer):
    """What the third pass added, with something in it: the Add-ons card listing a course
    bought, a read-only manager's note on each billing page, and partner staff's Void
    box on an issued renewal invoice (also with its error)."""
    company = await live_server.company_id(ADDONS_CUSTOMER)
    base = f"/companies/{company}/billing"
    customer = await new_page(browser, live_server)
    partner = await new_page(browser, live_server)
    try:
        await sign_in(customer, ADDONS_MANAGER)
        purchase = await _buy_with_addon_by_invoice(customer)
        await sign_in(partner, PARTNER)
        await partner.goto(purchase)
        await partner.get_by_label("Paid by").select_option(label="Bank transfer")
        await partner.get_by_role("button", name="Record payment").click()
        await expect(partner.get_by_test_id("invoice-status")).to_have_text("Paid")

        await customer.goto(base)
        await expect(customer.get_by_test_id("addons")).to_contain_text("bought")
        await customer.get_by_role("link", name="Subscriptions", exact=True).click()
        await customer.get_by_role("button", name="Request an invoice").click()
        number = re.search(r"Renewal invoice (INV-\d+)", await flash(customer).inner_text()).group(1)
        renewal = await _invoice_link(customer, number)
        await _add_read_only_manager(customer, browser, live_server, company)

        await partner.goto(renewal)
        void = partner.get_by_role("region", name="Void", exact=True)
        await expect(void).to_contain_text("no other renewal invoice or reminder is sent for this term")
        partner.once("dialog", lambda dialog: dialog.accept())
        await void.get_by_role("button", name="Void", exact=True).click()
        await expect(partner.get_by_role("alert").filter(has_text="Say why the invoice is void.")).to_be_visible()
        void_error = {"violations": await axe_violations(partner)}
        await partner.set_viewport_size(PHONE)
        widths = await partner.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    finally:
        await customer.context.close()
        await partner.context.close()

    customer_ctx = await _signed_in(browser, live_server, ADDONS_MANAGER)
    partner_ctx = await _signed_in(browser, live_server, PARTNER)
    viewer_ctx = await _signed_in(browser, live_server, VIEWER)
    try:
        found, wide = await _check(customer_ctx, [base, f"{base}/subscriptions", purchase, renewal])
        partner_found, partner_wide = await _check(partner_ctx, [renewal, purchase, f"/billing?customer={company}"])
        viewer_paths = [base, f"{base}/subscriptions", f"{base}/buy", f"{base}/change", f"{base}/account", renewal]
        viewer_found, viewer_wide = await _check(viewer_ctx, viewer_paths)
        page = await viewer_ctx.new_page()
        for path in viewer_paths:
            await page.goto(path)
            await expect(page.get_by_test_id("read-only").first).to_be_visible()
        await page.close()
    finally:
        await customer_ctx.close()
        await partner_ctx.close()
        await viewer_ctx.close()
    found |= {f"{path} (partner)": v for path, v in partner_found.items()}
    found |= {f"{path} (read-only)": v for path, v in viewer_found.items()}
    if void_error["violations"]:
        found[f"{renewal} (partner, Void refused)"] = void_error["violations"]
    wide |= {f"{path} (partner)": w for path, w in partner_wide.items()}
    wide |= {f"{path} (read-only)": w for path, w in viewer_wide.items()}
    if widths[0] > widths[1]:
        wide[f"{renewal} (partner, Void refused)"] = tuple(widths)
    assert not found, report(found)
    assert not wide, f"scrollWidth > innerWidth at 390 px: {wide}"
