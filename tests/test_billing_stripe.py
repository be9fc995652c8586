"""The Stripe adapter (portal/stripe_processor.py) through the real `stripe` SDK
against localstripe, a stateful fake of Stripe's API started by the test run on
loopback (tests/stripe_server.py): a Customer per billing account, a card saved
with a SetupIntent confirmed as Stripe.js confirms it, off-session PaymentIntents
keyed by the charge row, declines and "requires action" (3-D Secure); then the
domain and the web app with PAYMENT_PROCESSOR=stripe. Both engines.

Not exercised against the fake (it does not do them): Stripe's idempotency keys
(the portal's charge rows ask once per key on their own: test_billing_payments),
Stripe sending webhooks (test_billing_webhooks signs and posts them as Stripe
does), and Stripe's real decline reasons and 3-D Secure pages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import stripe

from portal.domain.billing import accounts, payments, subscriptions
from portal.domain.billing.renewal import online
from portal.domain.errors import ValidationFailed
from portal.services import build_services
from portal.settings import get_settings
from portal.stripe_processor import NOT_THIS_ACCOUNT, StripeProcessor
from portal.tables import OutboxEmail
from portal.tables.billing import BillingAccount, Charge, Invoice, Subscription
from tests.stripe_server import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET
from tests.support import csrf_of, sign_in
from tests.test_billing_subscriptions import ADDRESS, NOW, actors, pro

ACCEPTED = "4242424242424242"
CHARGES_DECLINED = "4000000000000341"
NEEDS_3DS = "4000002760003184"
ATTACH_DECLINED = "4000000000000002"


@pytest.fixture
def stripe_processor(localstripe) -> StripeProcessor:
    return StripeProcessor(SECRET_KEY, api_base=localstripe.url)


@pytest.fixture
def processor(stripe_processor):
    """The processor the app is handed (conftest's `services`): Stripe here."""
    return stripe_processor


@pytest.fixture
def services(localstripe, monkeypatch):
    """What start-up builds from PAYMENT_PROCESSOR=stripe and the keys (portal/services.py)."""
    settings = dataclasses.replace(
        get_settings(),
        payment_processor="stripe",
        stripe_secret_key=SECRET_KEY,
        stripe_publishable_key=PUBLISHABLE_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=localstripe.url,
    )
    return build_services(settings)


async def browser_confirms(processor: StripeProcessor, base: str, number: str) -> httpx.Response:
    """What Stripe.js does on the billing page: the SetupIntent the page was given,
    confirmed with the card typed into Elements (localstripe's stand-in sends the
    same request); the page receives the PaymentMethod's id."""
    secret = await processor.card_setup()
    assert secret and secret.startswith("seti_")
    intent = secret.split("_secret_")[0]
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{base}/v1/setup_intents/{intent}/confirm",
            json={
                "key": PUBLISHABLE_KEY,
                "use_stripe_sdk": True,
                "client_secret": secret,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
                },
            },
        )
    return answer


async def browser_sets_up(processor: StripeProcessor, base: str, number: str = ACCEPTED) -> str:
    answer = await browser_confirms(processor, base, number)
    assert answer.status_code == 200, answer.text
    return answer.json()["payment_method"]


async def test_a_card_the_bank_refuses_is_refused_in_the_browser(stripe_processor, localstripe):
    """Stripe.js shows the refusal under Elements; no payment method reaches the portal."""
    answer = await browser_confirms(stripe_processor, localstripe.url, ATTACH_DECLINED)
    assert answer.status_code == 402 and answer.json()["error"]["message"] == "Your card was declined."


async def test_a_card_set_up_in_the_browser_is_kept_on_a_customer_of_the_account(stripe_processor, localstripe):
    method = await browser_sets_up(stripe_processor, localstripe.url)
    saved = await stripe_processor.keep_card(
        method, previous_token=None, email="billing@north.example", name="North Ltd", now=NOW
    )
    assert (saved.token, saved.brand, saved.last4, saved.expires) == (method, "Visa", "4242", "2040-12")
    kept = stripe_processor.client.v1.payment_methods.retrieve(method)
    customer = stripe_processor.client.v1.customers.retrieve(kept.customer)
    assert customer.email == "billing@north.example"
    # A replacing card goes on the same Customer: one per billing account.
    second = await browser_sets_up(stripe_processor, localstripe.url)
    await stripe_processor.keep_card(second, previous_token=method, email="", name="", now=NOW)
    assert stripe_processor.client.v1.payment_methods.retrieve(second).customer == kept.customer


async def test_a_card_refused_or_not_this_accounts_is_not_kept(stripe_processor, localstripe):
    for sent in ("4242424242424242", "pm_doesnotexist", ""):
        with pytest.raises(ValidationFailed) as refused:
            await stripe_processor.keep_card(sent, previous_token=None, email="", name="", now=NOW)
        assert refused.value.errors == {"card": payments.NO_PAYMENT_METHOD}, sent
    # Another account's card (attached to its Customer) is not taken for this one.
    theirs = await browser_sets_up(stripe_processor, localstripe.url)
    await stripe_processor.keep_card(theirs, previous_token=None, email="", name="", now=NOW)
    with pytest.raises(ValidationFailed) as refused:
        await stripe_processor.keep_card(theirs, previous_token=None, email="", name="", now=NOW)
    assert refused.value.errors == {"card": NOT_THIS_ACCOUNT}
    with pytest.raises(ValidationFailed) as refused:
        await stripe_processor.keep_card(
            theirs, previous_token=None, email="", name="", now=datetime(2041, 1, 1, tzinfo=UTC)
        )
    assert refused.value.errors in ({"card": NOT_THIS_ACCOUNT}, {"card": "This card has expired."})


async def test_an_off_session_charge_succeeds_declines_or_requires_action(stripe_processor, localstripe):
    async def kept(number: str) -> str:
        method = await browser_sets_up(stripe_processor, localstripe.url, number)
        return (await stripe_processor.keep_card(method, previous_token=None, email="", name="", now=NOW)).token

    paid = await stripe_processor.charge(await kept(ACCEPTED), 1_320_000, "USD", "7:1")
    assert paid.ok and paid.reference.startswith("pi_")
    intent = stripe_processor.client.v1.payment_intents.retrieve(paid.reference)
    assert (intent.amount, intent.currency, intent.status) == (1_320_000, "usd", "succeeded")
    assert intent.metadata["charge_key"] == "7:1"

    declined = await stripe_processor.charge(await kept(CHARGES_DECLINED), 1_000, "USD", "8:1")
    assert (declined.ok, declined.requires_action) == (False, None) and declined.decline_reason

    action = await stripe_processor.charge(await kept(NEEDS_3DS), 1_000, "USD", "9:1")
    assert action.ok is False and action.requires_action and action.requires_action.startswith("pi_")
    assert action.decline_reason == payments.NEEDS_AUTHENTICATION
    assert (await stripe_processor.confirmation(action.requires_action))[0] == "requires_action"
    # Not a card kept at Stripe: declined without asking.
    assert (await stripe_processor.charge("tok_test_ok_x", 1_000, "USD", "10:1")).ok is False


async def test_buying_online_and_renewing_charge_through_stripe(tree, stripe_processor, localstripe):
    customer, _ = await actors(tree)
    method = await browser_sets_up(stripe_processor, localstripe.url)
    bought = await subscriptions.buy(
        customer,
        tree.north["id"],
        pro(0),
        NOW,
        account=accounts.OnlineAccount(payment_method=method, **ADDRESS),
        processor=stripe_processor,
    )
    assert bought["charge"].ok and bought["subscription"]["status"] == "active"
    account = await BillingAccount.select().first()
    assert (account["card_token"], account["card_last4"]) == (method, "4242")
    charge = await Charge.select().first()
    intent = stripe_processor.client.v1.payment_intents.retrieve(charge["processor_ref"])
    assert (
        intent.amount == bought["invoice"]["total_cents"] and intent.metadata["charge_key"] == charge["idempotency_key"]
    )

    # The renewal a year on: off-session, with the card kept.
    end = bought["subscription"]["term_end"]
    counts = await online.renew_due(end - timedelta(hours=12), processor=stripe_processor)
    assert (counts["claimed"], counts["renewed"]) == (1, 1)
    renewal = await Invoice.select().where(Invoice.kind == "renewal").first()
    assert renewal["status"] == "paid"
    renewed = await Charge.select().where(Charge.invoice == renewal["id"]).first()
    assert stripe_processor.client.v1.payment_intents.retrieve(renewed["processor_ref"]).status == "succeeded"


async def test_the_billing_pages_take_the_card_with_elements_under_stripe(client, tree, localstripe):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    page = await client.get(f"{base}/account")
    assert 'data-card-entry="stripe"' in page.text and f'data-publishable-key="{PUBLISHABLE_KEY}"' in page.text
    assert 'data-client-secret="seti_' in page.text
    assert f'<script src="{localstripe.url}/js.stripe.com/v3/"></script>' in page.text
    assert 'name="card_number"' not in page.text and "/test-processor/card" not in page.text
    policy = page.headers["content-security-policy"]
    assert f"script-src 'self' {localstripe.url};" in policy and f"connect-src 'self' {localstripe.url};" in policy
    assert (await client.get("/test-processor/card")).status_code == 404  # only the test processor has one

    secret = page.text.split('data-client-secret="')[1].split('"')[0]
    intent = secret.split("_secret_")[0]
    async with httpx.AsyncClient() as http:
        confirmed = await http.post(
            f"{localstripe.url}/v1/setup_intents/{intent}/confirm",
            json={
                "key": PUBLISHABLE_KEY,
                "client_secret": secret,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": ACCEPTED, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
                },
            },
        )
    method = confirmed.json()["payment_method"]
    saved = await client.post(
        f"{base}/account", data={"payment_method": method, **ADDRESS, "_csrf_token": csrf_of(page.text)}
    )
    assert saved.status_code == 302, saved.text[:1000]
    account = await BillingAccount.select().first()
    assert (account["card_token"], account["card_brand"], account["card_last4"]) == (method, "Visa", "4242")
    assert await Subscription.count() == 0


async def test_a_renewal_the_bank_holds_is_confirmed_through_the_e_mailed_link(
    client, tree, stripe_processor, localstripe
):
    """3-D Secure on an off-session renewal: the charge is declined as "requires action",
    the customer's managers get a link; there the browser confirms with the bank
    (Stripe.js; here its request to the fake) and the portal records the payment."""
    customer, _ = await actors(tree)
    method = await browser_sets_up(stripe_processor, localstripe.url)
    account = accounts.OnlineAccount(payment_method=method, **ADDRESS)
    bought = await subscriptions.buy(
        customer, tree.north["id"], pro(0), NOW, account=account, processor=stripe_processor
    )
    held = await browser_sets_up(stripe_processor, localstripe.url, NEEDS_3DS)
    await accounts.save_card(customer, tree.north["id"], held, NOW, processor=stripe_processor)
    end = bought["subscription"]["term_end"]
    counts = await online.renew_due(end - timedelta(hours=12), processor=stripe_processor)
    assert (counts["claimed"], counts["declined"]) == (1, 1)
    renewal = await Invoice.select().where(Invoice.kind == "renewal").first()
    charge = await Charge.select().where(Charge.invoice == renewal["id"]).first()
    assert (charge["status"], charge["decline_reason"]) == ("declined", payments.NEEDS_AUTHENTICATION)
    mail = await OutboxEmail.select().where(OutboxEmail.kind == "renewal_charge_failed").first()
    link = f"/invoices/{renewal['id']}/confirm-payment"
    assert mail["subject"].startswith("Confirm the payment") and link in mail["body"]

    await sign_in(client, tree.email("north"))
    page = await client.get(link)
    assert page.status_code == 200 and "Confirm the payment" in page.text
    secret = page.text.split('data-client-secret="')[1].split('"')[0]
    assert secret.startswith(charge["processor_ref"] + "_secret_")
    early = await client.post(link, data={"_csrf_token": csrf_of(page.text)})
    assert early.status_code == 400 and "has not confirmed this payment yet" in early.text.replace("&#39;", "'")
    async with httpx.AsyncClient() as http:  # what Stripe.js's confirmCardPayment sends once the bank agrees
        agreed = await http.post(
            f"{localstripe.url}/v1/payment_intents/{charge['processor_ref']}/_authenticate?success=true",
            json={"key": PUBLISHABLE_KEY, "client_secret": secret},
        )
    assert agreed.status_code == 200, agreed.text
    confirmed = await client.post(link, data={"_csrf_token": csrf_of(page.text)})
    assert confirmed.status_code == 302, confirmed.text[:1000]
    assert (await Invoice.select(Invoice.status).where(Invoice.id == renewal["id"]).first())["status"] == "paid"
    sub = await Subscription.select().where(Subscription.id == bought["subscription"]["id"]).first()
    assert sub["term_end"] > end
    again = await client.post(link, data={"_csrf_token": csrf_of(page.text)})
    assert again.status_code == 302  # the same confirmation again records nothing more
    assert await Charge.count().where((Charge.invoice == renewal["id"]) & (Charge.status == "succeeded")) == 1


def test_the_sdk_is_the_official_one():
    assert stripe.VERSION.split(".")[0] == "16"
