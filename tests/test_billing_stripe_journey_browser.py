"""A year with Stripe, in Chromium, against `portal serve` with PAYMENT_PROCESSOR=stripe
and the run's localstripe, on a server of this module's own (its demo data is
changed): a customer manager buys Pro online, typing the card into Elements
(localstripe's stand-in for Stripe.js), which also makes the customer's online
billing account; the billing tick, with the clock moved past the term's end, renews
the subscription and charges the kept card off-session; partner staff refund the
renewal invoice in full from its page; the customer downloads the renewal invoice
as PDF. Every request either browser sends to the portal, from signing in to the
PDF, is recorded: none carries the card's number, in its address or its body. Both
engines.

The tick runs in a child process (tests/renew_in_child.py), as the worker would,
against the server's database: the test process's own database is another one."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import stripe
from playwright.async_api import Browser, BrowserContext, Request, expect
from pypdf import PdfReader

from tests.live_server import LiveServer, new_page, serving, sign_in
from tests.stripe_server import SECRET_KEY, StripeServer, portal_env
from tests.test_billing_browser import PRO_20_TOTAL, flash, nav_link
from tests.test_billing_forms_carry_no_card import card_numbers_in

pytestmark = pytest.mark.browser

PROJECT_DIR = Path(__file__).resolve().parent.parent
CUSTOMER = "Copperleaf Accounting"
CUSTOMER_MANAGER = "manager@copperleaf-accounting.example"
PARTNER = "priya.shah@harbor-it.example"  # Harbor IT's manager; Harbor IT sells to Copperleaf
CARD = "4242424242424242"
BILLING_NAME = "Copperleaf Accounting LLP"


@pytest.fixture(scope="module")
async def stripe_server(localstripe: StripeServer) -> AsyncIterator[LiveServer]:
    async with serving(portal_env(localstripe)) as server:
        yield server


def recorded(context: BrowserContext, base_url: str, into: list[tuple[str, str]]) -> None:
    """Every request a context's pages send to the portal: its address and its body."""

    def seen(request: Request) -> None:
        if request.url.startswith(base_url):
            body = request.post_data_buffer or b""
            into.append((request.url, body.decode("latin-1")))

    context.on("request", seen)


def card_carried(url: str, body: str) -> bool:
    for text in (url, unquote_plus(url), body, unquote_plus(body)):
        if CARD in re.sub(r"[ -]", "", text) or card_numbers_in(text):
            return True
    return False


async def renew_in_child(server: LiveServer, localstripe: StripeServer) -> dict:
    """The billing tick's renewal of the customer's subscription, an hour past its term's end."""
    env = {
        **os.environ,
        **portal_env(localstripe),
        "DATABASE_URL": server.database_url,
        "BASE_URL": server.url,
        "LOG_LEVEL": "WARNING",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.renew_in_child",
        CUSTOMER,
        cwd=PROJECT_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    assert child.returncode == 0, output.decode(errors="replace")
    return json.loads(output.decode().strip().splitlines()[-1])


def _pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))


async def test_a_customer_pays_is_renewed_refunded_and_downloads_the_invoice(
    browser: Browser, stripe_server: LiveServer, localstripe: StripeServer
):
    to_portal: list[tuple[str, str]] = []
    customer = await new_page(browser, stripe_server)
    partner = await new_page(browser, stripe_server)
    recorded(customer.context, stripe_server.url, to_portal)
    recorded(partner.context, stripe_server.url, to_portal)
    try:
        # Pay online: the card goes into Elements; the portal gets a PaymentMethod's id.
        await sign_in(customer, CUSTOMER_MANAGER)
        await nav_link(customer, "Billing").click()
        await customer.get_by_role("link", name="Buy a license").first.click()
        await customer.get_by_role("radio", name=re.compile(r"^Pro: ")).check()
        await customer.get_by_label(re.compile(r"^Extra standard users")).fill("20")
        await customer.get_by_role("radio", name=re.compile(r"^Pay Online")).check()
        await customer.get_by_role("button", name="See the price").click()
        quote = customer.get_by_test_id("quote")
        await expect(quote.get_by_test_id("total")).to_have_text(PRO_20_TOTAL)
        element = quote.get_by_test_id("card-element")
        await element.get_by_placeholder("number").fill(CARD)
        await element.get_by_placeholder("exp_month").fill("12")
        await element.get_by_placeholder("exp_year").fill("40")
        await element.get_by_placeholder("cvc").fill("123")
        await element.get_by_placeholder("postal_code").fill("BS1 4QS")
        await customer.get_by_label("Billing name").fill(BILLING_NAME)
        await customer.get_by_label("Billing e-mail").fill("accounts@copperleaf-accounting.example")
        await customer.get_by_label("Address").fill("4 Copper Lane\nPortland, OR 97201")
        await customer.get_by_label("Country").select_option("US")
        await quote.get_by_role("button", name="Pay Online").click()
        await expect(flash(customer)).to_contain_text(f"Paid {PRO_20_TOTAL} by card")
        assert any("payment_method=pm_" in body for _, body in to_portal)

        # A year on: the tick renews it and charges the kept card through Stripe.
        renewal = await renew_in_child(stripe_server, localstripe)
        assert (renewal["counts"]["claimed"], renewal["counts"]["renewed"]) == (1, 1), renewal
        assert (renewal["status"], renewal["charge"]) == ("paid", "succeeded"), renewal
        assert renewal["new_start"] == renewal["old_end"]
        stripe_client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe.url})
        intent = await asyncio.to_thread(stripe_client.v1.payment_intents.retrieve, renewal["intent"])
        assert (intent.status, intent.amount) == ("succeeded", 1_320_000)

        invoice_path = f"/invoices/{renewal['invoice']}"
        await customer.goto(invoice_path)
        heading = customer.get_by_role("heading", name=re.compile(r"^Invoice INV-"))
        await expect(heading).to_be_visible()
        number = (await heading.inner_text()).removeprefix("Invoice ").strip()
        await expect(customer.get_by_test_id("invoice")).to_contain_text(f"ref. {renewal['intent']}")

        # Partner staff refund it in full, to the card, from the invoice's page.
        await sign_in(partner, PARTNER)
        await partner.goto(invoice_path)
        await partner.get_by_test_id("refund-link").click()
        form = partner.get_by_test_id("refund-form")
        await expect(form.get_by_role("heading", name=f"Refund invoice {number}")).to_be_visible()
        assert await form.get_by_label(re.compile(r"^Amount")).input_value() == "13200.00"
        await partner.get_by_label("Reason").fill("Renewed by mistake: the customer had moved on")
        await partner.get_by_role("button", name="Continue").click()
        confirm = partner.get_by_test_id("refund-confirm")
        await expect(confirm.get_by_test_id("will-change")).to_have_text(
            re.compile(rf"^Refund \$13,200\.00 USD to the card ending 4242 and issue a credit note for it against "
                       rf"invoice {number}")
        )  # fmt: skip
        await confirm.get_by_role("button", name="Refund $13,200.00 USD").click()
        await expect(flash(partner)).to_contain_text("Refunded $13,200.00 USD to the card. Credit note CN-")
        row = partner.get_by_test_id("refunds").get_by_test_id("refund-row")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("refunded to the card")
        # The money went back at Stripe: a refund of the renewal's PaymentIntent.
        refunds = await asyncio.to_thread(stripe_client.v1.refunds.list)
        assert [(r.payment_intent, r.amount) for r in refunds.data if r.payment_intent == renewal["intent"]] == [
            (renewal["intent"], 1_320_000)
        ]

        # The customer downloads the renewal invoice as PDF.
        await customer.goto(invoice_path)
        await expect(customer.get_by_test_id("refunds")).to_contain_text("$13,200.00 USD")
        async with customer.expect_download() as downloading:
            await customer.get_by_role("link", name="Download PDF").click()
        download = await downloading.value
        assert download.suggested_filename == f"{number}.pdf"
        text = _pdf_text(Path(await download.path()).read_bytes())
        for said in (
            f"Invoice {number}",
            "Paid",
            f"ref. {renewal['intent']}",
            BILLING_NAME,
            "4 Copper Lane",
            "13,200.00",
        ):
            assert said in text, f"{said!r} not in {text}"
    finally:
        await customer.context.close()
        await partner.context.close()

    assert len(to_portal) > 20, "the recorder saw the journey's requests"
    assert [url for url, body in to_portal if card_carried(url, body)] == []
