"""Billing pages through HTTP: the customer's Billing, the price shown
before anything is bought or changed, "Pay Online" with the test card, "Pay by
Invoice" and partner staff recording a bank transfer, "Subscriptions" → Cancel,
"Request cancellation", "Request an invoice", the partner's Billing and its
settings, invoices (printable page, CSV), and another tenant's ids answering 404."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

from portal.domain.billing import money
from portal.tables import LicenceBatch, LicenceOrder
from portal.tables.billing import BillingAccount, Invoice, Subscription
from tests.support import card_through_processor, csrf_headers, csrf_of, post_form, sign_in

HTMX = {"HX-Request": "true"}
CARD = {"card_number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2040", "cvc": "123"}
ADDRESS = {
    "billing_name": "North Customer Ltd",
    "billing_email": "billing@north.example",
    "address": "1 Harbour Road\nPortsmouth",
    "country": "gb",
}
PRO_20 = {"tier": "pro", "extra_users": "20", "read_only_users": "0", "method": "online"}
# Pro $6,000.00 a year + 20 extra users × $30.00 × 12 months.
PRO_20_TOTAL = "$13,200.00 USD"
_FLASH = re.compile(r'data-testid="flash">([^<]*)<')


def flashes(html: str) -> list[str]:
    return [text.replace("&#39;", "'").replace("&amp;", "&") for text in _FLASH.findall(html)]


_QUOTED = re.compile(r'<input type="hidden" name="(quoted_[a-z_]+)" value="([^"]*)">')


def quoted_fields(html: str) -> dict[str, str]:
    """The price a quote page showed, which its confirm button sends back."""
    return dict(_QUOTED.findall(html))


async def confirm_quote(client, page: str, action: str, data: dict):
    """Open the quote page, then press its confirm button: the form's fields, the price
    it showed and the CSRF token, as a browser posts them (a card typed into the
    test processor's frame first: support.card_through_processor)."""
    data, refused = await card_through_processor(client, data)
    if refused is not None:
        return refused
    opened = await client.get(page)
    return await client.post(action, data={**data, **quoted_fields(opened.text), "_csrf_token": csrf_of(opened.text)})


async def buy(client, company_id: int, purchase: dict, extra: dict | None = None):
    """The quote page (GET), then its confirm button, as a browser posts it."""
    base = f"/companies/{company_id}/billing"
    query = "&".join(f"{k}={v}" for k, v in purchase.items() if k != "addons")
    query += "".join(f"&addons={a}" for a in purchase.get("addons", ()))
    return await confirm_quote(client, f"{base}/buy/quote?{query}", f"{base}/buy", {**purchase, **(extra or {})})


async def buy_pro_online(client, tree) -> int:
    await sign_in(client, tree.email("north"))
    bought = await buy(client, tree.north["id"], PRO_20, {**CARD, **ADDRESS})
    assert bought.status_code == 302, bought.text[:2000]
    subscription = await Subscription.select().first()
    assert subscription is not None
    return subscription["id"]


async def test_the_dashboard_before_anything_is_bought(client, tree):
    await sign_in(client, tree.email("north"))
    page = await client.get(f"/companies/{tree.north['id']}/billing")
    assert page.status_code == 200
    assert "<h1>Billing</h1>" in page.text and "sold by Acme North" in page.text
    assert f'href="/companies/{tree.north["id"]}/billing/buy"' in page.text
    assert "Create an Online Billing Account" in page.text and 'data-testid="invoice-count">0 invoices<' in page.text
    assert '<link rel="stylesheet" href="/static/billing.css">' in page.text
    nav = page.text.split("<nav>")[1].split("</nav>")[0]
    assert f'<a href="/companies/{tree.north["id"]}/billing">Billing</a>' in nav


async def test_the_buy_form_lists_the_sellers_catalogue_with_currency(client, tree):
    await sign_in(client, tree.email("north"))
    page = await client.get(f"/companies/{tree.north['id']}/billing/buy")
    assert page.status_code == 200
    assert "Pro: $6,000.00 USD a year, 10 standard users included" in page.text
    assert "Lite: $3,000.00 USD a year, 5 standard users included" in page.text
    assert "Extra standard users ($30.00 USD per user per month)" in page.text
    assert "Read-only users ($5.00 USD per user per month)" in page.text
    assert "Onboarding online course: $2,000.00 USD" in page.text
    assert "Pay Online" in page.text and "Pay by Invoice" in page.text


async def test_the_price_is_shown_before_buying_and_nothing_is_written(client, tree):
    await sign_in(client, tree.email("north"))
    quote = await client.get(
        f"/companies/{tree.north['id']}/billing/buy/quote",
        params={**PRO_20, "addons": ["onboarding", "report_summary"]},
    )
    assert quote.status_code == 200
    # $13,200.00 + $2,000.00 + $4,000.00
    assert '<td class="right money" data-testid="total">$19,200.00 USD</td>' in quote.text
    assert "Additional standard user" in quote.text and "Onboarding online course" in quote.text
    # The card is typed into the test processor's own page, framed here; its test cards are said there.
    assert 'src="/test-processor/card"' in quote.text and 'name="card_number"' not in quote.text
    assert "Test mode: use card 4242 4242 4242 4242" in (await client.get("/test-processor/card")).text
    assert '<button class="button" data-testid="confirm">Pay Online</button>' in quote.text
    assert 'name="addons" value="onboarding"' in quote.text and 'name="addons" value="report_summary"' in quote.text
    assert await Subscription.count() == 0 and await Invoice.count() == 0


async def test_a_bad_choice_is_said_on_the_form(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing/buy/quote"
    bad_number = await client.get(base, params={**PRO_20, "extra_users": "lots"})
    assert bad_number.status_code == 400 and "Enter a whole number of users (0 or more)." in bad_number.text
    bad_tier = await client.get(base, params={**PRO_20, "tier": "gold"})
    assert bad_tier.status_code == 400 and "Choose Lite or Pro." in bad_tier.text
    assert 'name="extra_users" min="0" value="20"' in bad_tier.text  # the choice is kept
    # Summarised at the top too, each linking to its field.
    assert bad_tier.text.index('class="error-summary"') < bad_tier.text.index('name="tier"')
    assert '<a href="#tier">Choose Lite or Pro.</a>' in bad_tier.text and 'id="tier"' in bad_tier.text
    assert '<a href="#extra_users">' in bad_number.text and 'id="extra_users"' in bad_number.text
    assert await Subscription.count() == 0


async def test_pay_online_with_the_test_card_provisions_the_seats(client, tree):
    await sign_in(client, tree.email("north"))
    bought = await buy(client, tree.north["id"], PRO_20, {**CARD, **ADDRESS})
    assert bought.status_code == 302 and bought.headers["location"] == f"/companies/{tree.north['id']}/billing"
    batch = await LicenceBatch.select().first()
    assert batch is not None and batch["seats"] == 30 and batch["company"] == tree.north["id"]
    page = await client.get(bought.headers["location"])
    said = flashes(page.text)
    assert said == [
        f"Paid {PRO_20_TOTAL} by card (invoice INV-00001). 30 licenses are ready to allocate, "
        f"until {batch['ends_at']:%d %b %Y}."
    ]
    assert 'data-testid="tier">Pro' in page.text and 'data-testid="seats">30' in page.text
    assert "Visa ending 4242, expires 12/40" in page.text and "2040-12" not in page.text and "Test mode" in page.text
    assert "INV-00001" in page.text and PRO_20_TOTAL in page.text
    account = await BillingAccount.select().first()
    assert account["card_last4"] == "4242" and "4242424242424242" not in str(account)


async def test_a_declined_card_buys_nothing_and_says_why(client, tree):
    await sign_in(client, tree.email("north"))
    # The test processor's card page refuses the card and hands the billing form nothing.
    declined = await buy(client, tree.north["id"], PRO_20, {**CARD, "card_number": "4000 0000 0000 0002", **ADDRESS})
    assert declined.status_code == 400 and "Your card was declined." in declined.text
    assert "4000 0000 0000 0002" not in declined.text and "data-token" not in declined.text
    # Confirming anyway (no card handed over) buys nothing and says so beside the price.
    unpaid = await buy(client, tree.north["id"], PRO_20, ADDRESS)
    assert unpaid.status_code == 400
    assert "Pay Online needs a card" in unpaid.text
    assert PRO_20_TOTAL in unpaid.text and 'value="North Customer Ltd"' in unpaid.text  # the address is kept
    assert await Subscription.count() == 0 and await LicenceBatch.count() == 0
    assert await BillingAccount.count() == 0


async def test_a_charge_declined_after_the_card_was_saved_is_paid_later_with_another_card(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    declining = {**CARD, "card_number": "4000 0000 0000 0341", **ADDRESS}
    bought = await buy(client, tree.north["id"], PRO_20, declining)
    assert bought.status_code == 302
    page = await client.get(base)
    assert flashes(page.text) == [
        f"Your card was not charged: Your card was declined. Invoice INV-00001 for {PRO_20_TOTAL} stays unpaid "
        "and no licenses were added. Change the card under Payment method, or ask for an invoice."
    ]
    assert 'data-testid="unpaid"' in page.text and await LicenceBatch.count() == 0
    invoice = await Invoice.select().first()

    replaced = await post_form(client, f"{base}/account", f"{base}/card", CARD)
    assert replaced.status_code == 302
    assert flashes((await client.get(base)).text) == ["Card saved: Visa ending 4242."]
    view = await client.get(f"/invoices/{invoice['id']}")
    assert f'action="/invoices/{invoice["id"]}/pay"' in view.text and "Record payment" not in view.text
    paid = await post_form(client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/pay", {})
    assert paid.status_code == 302 and paid.headers["location"] == base
    page = await client.get(base)
    assert flashes(page.text) == [
        f"Paid {PRO_20_TOTAL} by card (invoice INV-00001). 30 licenses are ready to allocate."
    ]
    assert 'data-testid="unpaid"' not in page.text
    assert [b["seats"] for b in await LicenceBatch.select(LicenceBatch.seats)] == [30]
    twice = await post_form(client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/pay", {})
    assert twice.status_code == 302 and twice.headers["location"] == f"/invoices/{invoice['id']}"
    assert flashes((await client.get(twice.headers["location"])).text) == [
        "This invoice is already paid; it cannot be paid."
    ]


async def test_a_second_purchase_and_a_tampered_one_are_refused_on_the_page(client, tree):
    await buy_pro_online(client, tree)
    again = await buy(client, tree.north["id"], PRO_20)
    assert again.status_code == 400
    assert "North Customer already has a subscription" in again.text and PRO_20_TOTAL in again.text
    tampered = await buy(client, tree.north["id"], {**PRO_20, "tier": "platinum"})
    assert tampered.status_code == 400 and "Choose Lite or Pro." in tampered.text
    assert await Subscription.count() == 1 and await Invoice.count() == 1


async def test_upgrade_shows_the_pro_rata_price_then_charges_it(client, tree):
    subscription_id = await buy_pro_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    form = await client.get(f"{base}/change")
    assert form.status_code == 200 and 'name="extra_users" min="0" value="20"' in form.text

    before = datetime.now(UTC)
    quote = await client.get(f"{base}/change/quote", params={"tier": "pro", "extra_users": 25, "read_only_users": 0})
    after = datetime.now(UTC)
    assert quote.status_code == 200
    sub = await Subscription.select().where(Subscription.id == subscription_id).first()
    # 5 users × $30 × 12 = $1,800.00 for a whole term, for the days left (a midnight may pass meanwhile).
    expected = {
        money.format_money(money.prorate(180_000, sub["term_start"], sub["term_end"], at), "USD")
        for at in (before, after)
    }
    shown = re.search(r'data-testid="total">([^<]+)<', quote.text).group(1)
    assert shown in expected
    assert await Invoice.count() == 1  # the quote wrote nothing

    done = await confirm_quote(
        client,
        f"{base}/change/quote?tier=pro&extra_users=25&read_only_users=0",
        f"{base}/change",
        {"tier": "pro", "extra_users": "25", "read_only_users": "0"},
    )
    assert done.status_code == 302
    page = await client.get(done.headers["location"])
    said = flashes(page.text)
    assert len(said) == 1 and said[0].startswith(f"Charged {shown} pro rata (invoice INV-00002).")
    assert 'data-testid="seats">35' in page.text
    assert sorted(b["seats"] for b in await LicenceBatch.select(LicenceBatch.seats)) == [5, 30]


async def test_cancel_from_subscriptions_shows_the_end_date_and_can_be_undone(client, tree):
    subscription_id = await buy_pro_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    end = f"{(await Subscription.select().first())['term_end']:%d %b %Y}"
    page = await client.get(f"{base}/subscriptions")
    assert page.status_code == 200
    assert f'The license runs until <strong data-testid="end-date">{end}</strong>' in page.text
    assert f'action="/billing/subscriptions/{subscription_id}/cancel"' in page.text
    # The dialog's buttons say what each does: the post stops renewal, the other closes it.
    assert ">Stop automatic renewal</button>" in page.text
    assert re.search(r'popovertargetaction="hide"[^>]*>Keep it</button>', page.text)

    cancelled = await post_form(client, f"{base}/subscriptions", f"/billing/subscriptions/{subscription_id}/cancel", {})
    assert cancelled.status_code == 302 and cancelled.headers["location"] == f"{base}/subscriptions"
    page = await client.get(cancelled.headers["location"])
    assert flashes(page.text) == [
        f"Cancelled: nothing renews. The license runs until {end}; you can undo this before then."
    ]
    assert "Undo cancellation" in page.text and "(cancelled: does not renew)" in page.text
    assert (await Subscription.select().first())["auto_renew"] is False

    twice = await post_form(client, f"{base}/subscriptions", f"/billing/subscriptions/{subscription_id}/cancel", {})
    assert twice.status_code == 302
    assert flashes((await client.get(f"{base}/subscriptions")).text) == [f"Already cancelled: it runs until {end}."]

    undone = await post_form(
        client, f"{base}/subscriptions", f"/billing/subscriptions/{subscription_id}/undo-cancel", {}
    )
    page = await client.get(undone.headers["location"])
    assert flashes(page.text) == [f"Cancellation undone: the license renews by itself on {end}."]
    assert (await Subscription.select().first())["auto_renew"] is True


async def test_pay_by_invoice_then_partner_staff_record_a_bank_transfer(client, tree):
    await sign_in(client, tree.email("direct"))
    purchase = {"tier": "lite", "extra_users": "2", "read_only_users": "1", "method": "invoice"}
    quote = await client.get(f"/companies/{tree.direct['id']}/billing/buy/quote", params=purchase)
    assert '<button class="button" data-testid="confirm">Pay by Invoice</button>' in quote.text
    assert "Card number" not in quote.text
    bought = await buy(client, tree.direct["id"], purchase)
    assert bought.status_code == 302
    # $3,000.00 + 2 × $360.00 + 1 × $60.00
    invoice = await Invoice.select().first()
    assert invoice["total_cents"] == 378_000 and invoice["status"] == "issued"
    page = await client.get(bought.headers["location"])
    said = flashes(page.text)
    assert len(said) == 1 and said[0].startswith("Invoice INV-00001 for $3,780.00 USD was issued, due ")
    assert said[0].endswith("The licenses are assigned once it is paid.")
    order = await LicenceOrder.select().first()
    assert order["status"] == "requested" and order["quantity"] == 7
    assert await LicenceBatch.count() == 0

    # The customer may look at the invoice but not record its payment.
    view = await client.get(f"/invoices/{invoice['id']}")
    assert view.status_code == 200 and "Record payment" not in view.text
    refused = await client.post(
        f"/invoices/{invoice['id']}/payment",
        data={"method": "bank_transfer", "reference": "x"},
        headers=await csrf_headers(client, f"/invoices/{invoice['id']}"),
    )
    assert refused.status_code == 403

    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    listed = await client.get("/billing/invoices", params={"status": "issued"})
    assert listed.status_code == 200 and "Direct Customer" in listed.text and "$3,780.00 USD" in listed.text
    view = await client.get(f"/invoices/{invoice['id']}")
    assert "Record payment" in view.text and "Bank transfer" in view.text
    no_method = await post_form(
        client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/payment", {"method": "iou", "reference": ""}
    )
    assert no_method.status_code == 400 and "Choose how it was paid." in no_method.text
    assert (await Invoice.select().first())["status"] == "issued"

    paid = await post_form(
        client,
        f"/invoices/{invoice['id']}",
        f"/invoices/{invoice['id']}/payment",
        {"method": "bank_transfer", "reference": "TRF-2026-001"},
    )
    assert paid.status_code == 302
    batch = await LicenceBatch.select().first()
    assert batch["seats"] == 7
    page = await client.get(paid.headers["location"])
    assert flashes(page.text) == [
        "Payment of $3,780.00 USD recorded on invoice INV-00001. "
        f"7 licenses assigned, until {batch['ends_at']:%d %b %Y}."
    ]
    assert 'data-testid="invoice-status">Paid' in page.text and "Bank transfer" in page.text
    assert "TRF-2026-001" in page.text and "Record payment" not in page.text
    again = await post_form(
        client,
        f"/invoices/{invoice['id']}",
        f"/invoices/{invoice['id']}/payment",
        {"method": "bank_transfer", "reference": "again"},
    )
    assert again.status_code == 400 and await LicenceBatch.count() == 1


async def test_request_cancellation_is_confirmed_by_partner_staff(client, tree):
    await sign_in(client, tree.email("direct"))
    await buy(
        client, tree.direct["id"], {"tier": "lite", "extra_users": "0", "read_only_users": "0", "method": "invoice"}
    )
    invoice = await Invoice.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    await post_form(
        client,
        f"/invoices/{invoice['id']}",
        f"/invoices/{invoice['id']}/payment",
        {"method": "check", "reference": "7"},
    )
    subscription = await Subscription.select().first()
    end = f"{subscription['term_end']:%d %b %Y}"

    client.cookies.clear()
    await sign_in(client, tree.email("direct"))
    base = f"/companies/{tree.direct['id']}/billing"
    page = await client.get(f"{base}/subscriptions")
    assert "Request cancellation" in page.text and "Request an invoice" in page.text
    assert f'/billing/subscriptions/{subscription["id"]}/cancel"' not in page.text  # Cancel is for Pay Online
    asked = await post_form(
        client, f"{base}/subscriptions", f"/billing/subscriptions/{subscription['id']}/request-cancellation", {}
    )
    page = await client.get(asked.headers["location"])
    assert flashes(page.text) == [
        f"Cancellation requested: your partner's staff confirm it, and nothing renews after {end}."
    ]
    assert "Cancellation requested on" in page.text
    refused = await post_form(
        client, f"{base}/subscriptions", f"/billing/subscriptions/{subscription['id']}/confirm-cancellation", {}
    )
    assert refused.status_code == 403

    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    listed = await client.get("/billing", params={"cancellation_requested": "yes"})
    assert listed.status_code == 200 and 'data-testid="subscription-count">1 subscription<' in listed.text
    assert "Confirm cancellation" in listed.text
    # The e-mail to partner staff links to /billing/subscriptions: the same list.
    same = await client.get("/billing/subscriptions", params={"cancellation_requested": "yes"})
    assert same.status_code == 200 and "Confirm cancellation" in same.text
    confirmed = await post_form(
        client, "/billing", f"/billing/subscriptions/{subscription['id']}/confirm-cancellation", {}
    )
    assert confirmed.headers["location"] == "/billing?cancellation_requested=yes"
    page = await client.get(confirmed.headers["location"])
    assert flashes(page.text) == [f"Cancellation confirmed: the subscription ends on {end} and does not renew."]
    assert 'data-testid="subscription-count">0 subscriptions<' in page.text
    assert (await Subscription.select().first())["auto_renew"] is False


async def test_request_an_invoice_issues_the_renewal_invoice_once(client, tree):
    subscription_id = await buy_pro_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    for _ in range(2):
        asked = await post_form(
            client, f"{base}/subscriptions", f"/billing/subscriptions/{subscription_id}/request-invoice", {}
        )
        assert asked.status_code == 302
    page = await client.get(asked.headers["location"])
    assert flashes(page.text) == [
        f"Renewal invoice INV-00002 for {PRO_20_TOTAL} is ready below; "
        "paid before the end, the next term starts where this one ends."
    ]
    assert await Invoice.count().where(Invoice.kind == "renewal") == 1
    dashboard = await client.get(base)
    assert 'data-testid="unpaid"' in dashboard.text and "INV-00002" in dashboard.text


async def test_create_an_online_billing_account_names_each_bad_field(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    page = await client.get(f"{base}/account")
    assert page.status_code == 200 and 'src="/test-processor/card"' in page.text
    bad = await post_form(
        client,
        f"{base}/account",
        f"{base}/account",
        {**CARD, **ADDRESS, "billing_email": "nobody", "country": "Britain"},
    )
    assert bad.status_code == 400
    assert "“Britain” is not a country in the list: choose one." in bad.text
    assert "The email address is not valid." in bad.text or "billing_email" in bad.text
    assert await BillingAccount.count() == 0
    bad_card = await post_form(client, f"{base}/account", f"{base}/account", {**CARD, "card_number": "1234", **ADDRESS})
    assert bad_card.status_code == 400 and "That card number is not valid." in bad_card.text
    assert await BillingAccount.count() == 0
    done = await post_form(client, f"{base}/account", f"{base}/account", {**CARD, **ADDRESS})
    assert done.status_code == 302
    page = await client.get(done.headers["location"])
    assert flashes(page.text) == [
        "Online billing account saved: Visa ending 4242. Renewals are paid online from now on."
    ]
    assert "North Customer Ltd" in page.text and "United Kingdom" in page.text


async def test_invoices_download_as_csv_and_print_alone(client, tree):
    await buy_pro_online(client, tree)
    invoice = await Invoice.select().first()
    download = await client.get(f"/companies/{tree.north['id']}/billing/invoices.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["Invoice", "Seller", "Customer", "Kind", "Status"]
    assert [r[:5] + r[10:12] for r in rows[1:]] == [
        ["INV-00001", "Acme North", "North Customer", "Purchase", "Paid", PRO_20_TOTAL, "1320000"]
    ]
    view = await client.get(f"/invoices/{invoice['id']}")
    assert view.status_code == 200
    assert "Invoice INV-00001" in view.text and "<strong>Acme North</strong>" in view.text
    assert "North Customer Ltd" in view.text and "Tax (0 %)" in view.text
    css = await client.get("/static/billing.css")
    assert "@media print" in css.text and ".topbar" in css.text


async def test_partner_billing_lists_filters_and_exports(client, tree):
    await buy_pro_online(client, tree)
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    page = await client.get("/billing")
    assert (
        page.status_code == 200
        and 'data-testid="subscription-count">1 subscription<' in page.text
        and "North Customer" in page.text
    )
    assert "Add Filter" in page.text and "Failed charges" in page.text
    nav = page.text.split("<nav>")[1].split("</nav>")[0]
    assert '<a href="/billing">Billing</a>' in nav
    fragment = await client.get(
        "/billing", params={"method": "invoice"}, headers={**HTMX, "HX-Target": "billing-results"}
    )
    assert (
        fragment.status_code == 200
        and "<html" not in fragment.text
        and 'data-testid="subscription-count">0 subscriptions<' in fragment.text
    )
    field = await client.get("/billing/filters/customer", headers=HTMX)
    assert field.status_code == 200 and ">North Customer</option>" in field.text
    field = await client.get("/billing/invoices/filters/status", headers=HTMX)
    assert 'name="status"' in field.text and ">Issued</option>" in field.text
    invoices = await client.get("/billing/invoices", params={"customer": tree.north["id"]})
    assert (
        invoices.status_code == 200
        and 'data-testid="invoice-count">1 invoice<' in invoices.text
        and PRO_20_TOTAL in invoices.text
    )
    download = await client.get("/billing/invoices.csv", params={"status": "void"})
    assert download.status_code == 200 and len(download.text.strip().splitlines()) == 1


async def test_partner_settings_and_catalogue(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/billing/settings")
    assert page.status_code == 200 and 'name="tax_rate" value="0"' in page.text
    assert 'value="6000.00"' in page.text
    bad = await post_form(client, "/billing/settings", "/billing/settings", {"currency": "USD", "tax_rate": "lots"})
    assert bad.status_code == 400 and "Enter the tax rate in per cent, for example 8.25 (or 0)." in bad.text
    saved = await post_form(
        client,
        "/billing/settings",
        "/billing/settings",
        {"currency": "EUR", "tax_rate": "8.25", "assign_unpaid": "yes"},
    )
    assert saved.status_code == 302
    page = await client.get("/billing/settings")
    assert flashes(page.text) == [
        "Billing settings saved: prices in EUR, tax 8.25 %, invoice orders assigned at once. "
        "Invoices already issued keep theirs."
    ]
    bad_price = await post_form(
        client,
        "/billing/settings",
        "/billing/catalogue",
        {"price.pro": "six", "included_users.pro": "10", "active.pro": "yes"},
    )
    assert bad_price.status_code == 400 and "Enter a price such as 6000.00." in bad_price.text
    priced = await post_form(
        client,
        "/billing/settings",
        "/billing/catalogue",
        {"price.pro": "7,000.50", "included_users.pro": "12", "active.pro": "yes"},
    )
    assert priced.status_code == 302
    page = await client.get("/billing/settings")
    assert flashes(page.text) == [
        "Pro: €7,000.50 EUR per year, 12 standard users included. Invoices already issued keep their prices."
    ]


async def test_customer_managers_cannot_open_the_partner_pages(client, tree):
    await sign_in(client, tree.email("north"))
    for path in ("/billing", "/billing/invoices", "/billing/settings", "/billing/invoices.csv"):
        assert (await client.get(path)).status_code == 403, path
    assert (await client.get(f"/companies/{tree.sub['id']}/billing")).status_code == 404


async def test_another_tenants_ids_answer_404(client, tree):
    subscription_id = await buy_pro_online(client, tree)
    invoice = await Invoice.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("other_customer"))
    headers = await csrf_headers(client)
    north = tree.north["id"]
    for path in (
        f"/companies/{north}/billing",
        f"/companies/{north}/billing/subscriptions",
        f"/companies/{north}/billing/buy",
        f"/companies/{north}/billing/buy/quote?tier=pro&method=online",
        f"/companies/{north}/billing/change",
        f"/companies/{north}/billing/add-users",
        f"/companies/{north}/billing/add-users/quote?standard_users=1&read_only_users=0",
        f"/companies/{north}/billing/account",
        f"/companies/{north}/billing/invoices.csv",
        f"/invoices/{invoice['id']}",
    ):
        assert (await client.get(path)).status_code == 404, path
    for path in (
        f"/billing/subscriptions/{subscription_id}/cancel",
        f"/billing/subscriptions/{subscription_id}/request-invoice",
        f"/companies/{north}/billing/buy",
        f"/companies/{north}/billing/add-users",
        f"/companies/{north}/billing/account",
        f"/invoices/{invoice['id']}/pay",
    ):
        assert (await client.post(path, data=PRO_20, headers=headers)).status_code == 404, path
    client.cookies.clear()
    await sign_in(client, tree.email("other"))
    headers = await csrf_headers(client)
    assert (await client.get(f"/invoices/{invoice['id']}")).status_code == 404
    paid = await client.post(
        f"/invoices/{invoice['id']}/payment", data={"method": "check", "reference": "1"}, headers=headers
    )
    assert paid.status_code == 404
    assert (await client.get("/billing")).status_code == 200
    assert 'data-testid="subscription-count">0 subscriptions<' in (await client.get("/billing")).text
    assert (await Subscription.select().first())["auto_renew"] is True


async def test_a_partner_in_manage_mode_buys_for_the_customer(client, tree):
    await sign_in(client, tree.email("partner"))
    await client.post(f"/companies/{tree.direct['id']}/manage", headers=await csrf_headers(client))
    page = await client.get(f"/companies/{tree.direct['id']}/billing")
    assert page.status_code == 200 and 'data-testid="manage-banner"' in page.text
    nav = page.text.split("<nav>")[1].split("</nav>")[0]
    assert f'<a href="/companies/{tree.direct["id"]}/billing">Billing</a>' in nav
    bought = await buy(
        client, tree.direct["id"], {"tier": "pro", "extra_users": "0", "read_only_users": "0", "method": "invoice"}
    )
    assert bought.status_code == 302
    # Only Direct Customer's invoices on its page, though the partner's wing holds more.
    page = await client.get(bought.headers["location"])
    assert 'data-testid="invoice-count">1 invoice<' in page.text


async def test_create_an_online_billing_account_names_when_it_renews(client, tree):
    await sign_in(client, tree.email("direct"))
    base = f"/companies/{tree.direct['id']}/billing"
    nothing_yet = await client.get(f"{base}/account")
    assert "renews by itself one year after the payment unless cancelled" in nothing_yet.text
    purchase = {"tier": "lite", "extra_users": "0", "read_only_users": "0", "method": "invoice"}
    assert (await buy(client, tree.direct["id"], purchase)).status_code == 302
    # Unpaid, the term has no end yet: the page says when it will have one, never "on  unless".
    pending = await client.get(f"{base}/account")
    assert "renews by itself one year after the payment unless cancelled" in pending.text
    assert "renews by itself on  unless" not in pending.text
    end = datetime(2031, 3, 4, tzinfo=UTC)
    await Subscription.update({Subscription.status: "active", Subscription.term_end: end}).where(
        Subscription.company == tree.direct["id"]
    )
    active = await client.get(f"{base}/account")
    assert "renews by itself on 04 Mar 2031 unless cancelled" in active.text


async def test_the_billing_name_and_email_start_from_the_company_and_the_manager(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    page = await client.get(f"{base}/account")
    name = tree.north["name"].replace("'", "&#39;")
    assert f'name="billing_name" value="{name}"' in page.text
    assert f'name="billing_email" value="{tree.email("north")}"' in page.text
    quote = await client.get(f"{base}/buy/quote", params=PRO_20)
    assert f'name="billing_name" value="{name}"' in quote.text
    assert f'name="billing_email" value="{tree.email("north")}"' in quote.text
    # What was typed comes back as typed, even emptied.
    bad = await post_form(client, f"{base}/account", f"{base}/account", {**CARD, **ADDRESS, "billing_name": ""})
    assert bad.status_code == 400 and 'name="billing_name" value=""' in bad.text
    assert 'name="billing_email" value="billing@north.example"' in bad.text


async def test_billing_form_errors_are_summarised_at_the_top_linking_to_each_field(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    bad = await post_form(
        client,
        f"{base}/account",
        f"{base}/account",
        {**CARD, **ADDRESS, "billing_email": "nobody", "country": "Britain"},
    )
    assert bad.status_code == 400
    summary = re.search(r'<div class="error-summary" role="alert"[^>]*>(.*?)</div>', bad.text, re.S)
    assert summary is not None and summary.start() < bad.text.index('name="billing_name"')
    assert '<a href="#billing_email">' in summary.group(1) and '<a href="#country">' in summary.group(1)
    assert 'id="billing_email"' in bad.text and 'id="country"' in bad.text
    assert 'value="Britain"' in bad.text and "1 Harbour Road" in bad.text
    assert "error-summary" not in (await client.get(f"{base}/account")).text
    refused = await buy(client, tree.north["id"], PRO_20, {**CARD, **ADDRESS, "country": "Britain"})
    assert refused.status_code == 400 and 'class="error-summary" role="alert"' in refused.text
    assert '<a href="#country">' in refused.text
