"""The card never reaches the portal's billing: every form of every billing page, as
rendered, has no field a card number or security code could be typed into, and
posting each as rendered sends none; the card is typed into the test processor's
own page (framed), whose form posts to the test processor's endpoint and hands
back a token. Also: settings choose the processor, and the app, the worker and
the in-process timer are handed it (portal/services.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from portal.domain.billing import payments
from portal.domain.billing.payments import TestProcessor
from portal.services import Services, build_services
from portal.settings import get_settings
from portal.tables.billing import BillingAccount, Invoice, Subscription
from tests.support import csrf_of, handed_card, sign_in
from tests.test_billing_web import ADDRESS, PRO_20, buy, buy_pro_online

BILLING_ROUTE = re.compile(r"^/(companies/\d+/billing|billing|invoices)(/|$)")
CARD_NAMES = re.compile(r"card.?num|^number$|cc-?num|^cvc$|^cvv$|^csc$|exp_(month|year)", re.IGNORECASE)
CARD_AUTOCOMPLETE = re.compile(r"^cc-(number|csc|exp)", re.IGNORECASE)
# 13-19 digits, spaces or dashes between: what a card number looks like in a form value.
CARD_LIKE = re.compile(r"^(?:\d[ -]?){12,18}\d$")


class Forms(HTMLParser):
    """Each <form>: its action, method and fields as a browser would post them
    (inputs with a name, the first option of a select, a textarea's text)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": []}
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "select", "textarea"):
            self._form["fields"].append(a | {"tag": tag})
            if tag == "textarea":
                self._textarea = a.get("name")

    def handle_data(self, data):
        if self._form is not None and self._textarea:
            self._form["fields"][-1]["value"] = data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None


def forms_of(html: str) -> list[dict]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


def card_fields(form: dict) -> list[dict]:
    return [
        f
        for f in form["fields"]
        if CARD_NAMES.search(f.get("name") or "") or CARD_AUTOCOMPLETE.match(f.get("autocomplete") or "")
    ]


def as_posted(form: dict) -> dict[str, str]:
    data: dict[str, str] = {}
    for f in form["fields"]:
        name = f.get("name")
        if not name or f.get("type") in ("submit", "button") or f.get("disabled") is not None:
            continue
        if f.get("type") in ("checkbox", "radio") and f.get("checked") is None:
            continue
        data.setdefault(name, f.get("value") or "")
    return data


async def test_no_billing_form_has_a_card_field_and_none_posts_one(client, tree):
    """Each form is posted as rendered (which may buy or change something): the pages
    with a card kept and a subscription first (North), then those before (Direct)."""
    checked: set[str] = set()

    async def check(url: str) -> None:
        page = await client.get(url)
        assert page.status_code == 200, url
        for form in forms_of(page.text):
            if not BILLING_ROUTE.match(form["action"]) or form["method"] != "post":
                continue
            assert card_fields(form) == [], f"{url}: {form['action']} has a card field"
            sent = as_posted(form)
            assert not any(CARD_LIKE.match(v.strip()) for v in sent.values()), (url, form["action"])
            answer = await client.post(form["action"], data=sent)
            assert answer.status_code < 500, (url, form["action"], answer.text[:500])
            checked.add(re.sub(r"\d+", "N", form["action"]))

    base = f"/companies/{tree.north['id']}/billing"
    await buy_pro_online(client, tree)  # Pay Online: a card kept, a subscription, an invoice
    invoice = await Invoice.select(Invoice.id).first()
    for url in (f"{base}/account", f"{base}/change", f"{base}/subscriptions", f"/invoices/{invoice['id']}", base):
        await check(url)
    base = f"/companies/{tree.direct['id']}/billing"
    await sign_in(client, tree.email("direct"))
    for url in (
        f"{base}/buy",
        f"{base}/account",
        f"{base}/buy/quote?tier=pro&extra_users=20&read_only_users=0&method=online",
        f"{base}/buy/quote?tier=pro&extra_users=20&read_only_users=0&method=invoice",
        base,
    ):
        await check(url)
    # Those that take a card among them: Replace the card, Create an Online Billing Account, buying online.
    assert {"/companies/N/billing/card", "/companies/N/billing/account", "/companies/N/billing/buy"} <= checked


async def test_the_card_form_is_the_test_processors_and_hands_back_a_token(client, tree):
    await sign_in(client, tree.email("north"))
    quote = await client.get(f"/companies/{tree.north['id']}/billing/buy/quote", params=PRO_20)
    assert 'src="/test-processor/card"' in quote.text
    frame = await client.get("/test-processor/card")
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
    (form,) = forms_of(frame.text)
    assert (form["action"], form["method"]) == ("/test-processor/card", "post")
    assert not BILLING_ROUTE.match(form["action"])
    assert {f["name"] for f in card_fields(form)} == {"card_number", "exp_month", "exp_year", "cvc"}
    handed = await client.post(
        "/test-processor/card",
        data={
            "card_number": "4242 4242 4242 4242",
            "exp_month": "12",
            "exp_year": "40",
            "cvc": "123",
            "_csrf_token": csrf_of(frame.text),
        },
    )
    token = re.search(r'data-token="([^"]+)"', handed.text).group(1)
    assert token.startswith("tok_test_ok_") and "4242424242424242" not in token
    assert "Visa ending 4242, expires 12/40" in handed.text
    refused = await client.post(
        "/test-processor/card",
        data={
            "card_number": "4000 0000 0000 0002",
            "exp_month": "12",
            "exp_year": "2040",
            "cvc": "123",
            "_csrf_token": csrf_of(frame.text),
        },
    )
    assert refused.status_code == 400 and "Your card was declined." in refused.text
    assert "data-token" not in refused.text and "4000 0000 0000 0002" not in refused.text


async def test_a_card_number_posted_to_a_billing_route_is_not_a_card(client, tree):
    """A hand-made post with the card's fields (no processor in between) saves no card."""
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    page = await client.get(f"{base}/account")
    raw = {"card_number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2040", "cvc": "123"}
    for sent in (raw, {**raw, "payment_method": "4242 4242 4242 4242"}):
        refused = await client.post(f"{base}/account", data={**sent, **ADDRESS, "_csrf_token": csrf_of(page.text)})
        assert refused.status_code == 400 and payments.NO_PAYMENT_METHOD in refused.text.replace("&#39;", "'")
    assert await BillingAccount.count() == 0
    bought = await buy(client, tree.north["id"], PRO_20, {**(await handed_card(client)), **ADDRESS})
    assert bought.status_code == 302 and await Subscription.count() == 1


def test_settings_choose_the_processor(monkeypatch):
    assert get_settings().payment_processor == "test"
    services = build_services(get_settings())
    assert isinstance(services.processor, TestProcessor) and services.card_entry.kind == "test"
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("PAYMENT_PROCESSOR", "paypal")
        with pytest.raises(ValueError, match="PAYMENT_PROCESSOR must be one of test, stripe"):
            get_settings()
        monkeypatch.setenv("PAYMENT_PROCESSOR", "stripe")
        monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
        with pytest.raises(ValueError, match="STRIPE_PUBLISHABLE_KEY, STRIPE_WEBHOOK_SECRET"):
            get_settings()
    finally:
        get_settings.cache_clear()


async def test_the_worker_hands_its_jobs_the_services():
    from portal.jobs import worker

    ctx: dict = {}
    await worker.startup(ctx)
    assert isinstance(ctx["services"], Services) and isinstance(ctx["services"].processor, TestProcessor)
    assert isinstance(worker.new_worker().ctx["services"], Services)


class HeldProcessor(TestProcessor):
    """Its bank holds every charge for the cardholder (3-D Secure)."""

    async def charge(self, token, amount_cents, currency, idempotency_key):
        self.calls.append(idempotency_key)
        return payments.ChargeResult(
            ok=False, reference="pi_held", decline_reason=payments.NEEDS_AUTHENTICATION, requires_action="pi_held"
        )


class TestABankThatHoldsEveryCharge:
    @pytest.fixture
    def processor(self):
        """The processor the app is handed (conftest's `services`), for this class's tests."""
        return HeldProcessor()

    async def test_a_purchase_it_holds_sends_the_buyer_to_confirm_it(self, client, tree, processor):
        await sign_in(client, tree.email("north"))
        bought = await buy(client, tree.north["id"], PRO_20, {**(await handed_card(client)), **ADDRESS})
        invoice = await Invoice.select().first()
        confirm = f"/invoices/{invoice['id']}/confirm-payment"
        assert bought.status_code == 302 and bought.headers["location"] == confirm
        page = await client.get(confirm)
        assert page.status_code == 200 and "Your bank asks you to confirm this payment" in page.text
        # Not confirmed at the processor: nothing is paid.
        refused = await client.post(confirm, data={"_csrf_token": csrf_of(page.text)})
        assert refused.status_code == 400 and invoice["status"] == "issued"
        assert (await Subscription.select(Subscription.status).first())["status"] == "pending"
        assert processor.calls == [f"{invoice['id']}:1"]
