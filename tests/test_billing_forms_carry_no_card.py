"""No billing route ever receives a card number: every form of the billing pages is
filled and sent as a browser sends it (GET forms as their query, POST forms as their
body, the card handed over as the processor's token), pages that answer are crawled
in turn, and what reached each billing route is read on the way in. Under the test
processor and under Stripe (Elements), whose card fields are drawn by Stripe.js and
never belong to the portal's form."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from portal.services import build_services
from portal.settings import get_settings
from portal.tables.billing import BillingAccount, Invoice, Subscription
from tests.stripe_server import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET
from tests.support import csrf_of, handed_card, sign_in

BILLING_ROUTE = re.compile(r"^/(companies/\d+/billing|billing|invoices)(/|$)")
# A field named for a card's number, code or expiry ("po_number", a purchase order's, is not).
CARD_NAME = re.compile(r"card|cvc|cvv|csc|^number$|cc.?num|^exp_(month|year)$|^pan$", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,18}")
FILLED = {
    "billing_name": "Direct Customer Ltd",
    "billing_email": "billing@direct.example",
    "address": "2 Quay Street\nBristol",
    "country": "GB",
    "reference": "BT 77",
    "reason": "Asked by the customer",
}


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


# What the test processor hands back for a card: brand, last four, expiry, 24 random hex digits.
OUR_CARD_TOKEN = re.compile(r"tok_test_(ok|decline)_[vmac]\d{10}_[0-9a-f]{24}")


def card_numbers_in(value: str) -> list[str]:
    """Runs of 13-19 digits (spaces or dashes between them allowed) that pass Luhn's check."""
    found = []
    for run in _DIGIT_RUN.finditer(value):
        digits = re.sub(r"\D", "", run.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(digits)
    return found


class Received:
    """The app, wrapped: the fields of every request to a billing route, query and
    url-encoded body alike, recorded before the app reads them."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[tuple[str, str, list[tuple[str, str]]]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not BILLING_ROUTE.match(scope["path"]):
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        fields = parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode()
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields += parse_qsl(body.decode(), keep_blank_values=True)
        else:
            assert not body, f"{scope['path']} received a {content_type} body this test cannot read"
        self.requests.append((scope["method"], scope["path"], fields))
        replay = iter(messages)

        async def replayed():
            return next(replay, None) or await receive()

        return await self.app(scope, replayed, send)

    def card_data(self) -> list[tuple[str, str, str, str]]:
        """(method, path, field, why) for every field that names or holds a card."""
        found = []
        for method, path, fields in self.requests:
            for name, value in fields:
                if name == "_csrf_token" or OUR_CARD_TOKEN.fullmatch(value):
                    # Our own random tokens (the CSRF token, the test processor's card token with
                    # its hex tail): now and then they hold a digit run that passes the card checksum.
                    continue
                if CARD_NAME.search(name):
                    found.append((method, path, name, "named like a card field"))
                if card_numbers_in(value) or card_numbers_in(name):
                    found.append((method, path, name, "holds a card number"))
        return found


class Forms(HTMLParser):
    """Each <form>: action, method and its fields; a select with its options."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: dict | None = None
        self._textarea: dict | None = None
        self.client_secret = ""

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs} | {"tag": tag}
        if "data-client-secret" in a and a["data-client-secret"]:
            self.client_secret = a["data-client-secret"]
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": []}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag in ("input", "textarea", "select", "button"):
            a.setdefault("value", "")
            a["options"] = []
            self._form["fields"].append(a)
            self._select = a if tag == "select" else None
            self._textarea = a if tag == "textarea" else None
        elif tag == "option" and self._select is not None:
            self._select["options"].append((a.get("value", ""), "selected" in a))

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea["value"] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag in ("select", "textarea"):
            self._select = self._textarea = None


async def stripe_payment_method(secret: str, base: str) -> str:
    """What Stripe.js hands the page for the card typed into Elements: the
    SetupIntent the page was given, confirmed with the card at (fake) Stripe."""
    intent = secret.split("_secret_")[0]
    async with httpx.AsyncClient() as http:
        confirmed = await http.post(
            f"{base}/v1/setup_intents/{intent}/confirm",
            json={
                "key": PUBLISHABLE_KEY,
                "client_secret": secret,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"},
                },
            },
        )
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json()["payment_method"]


class Browser:
    """Fills and sends each billing form of a page as a person with a browser would."""

    def __init__(self, client: httpx.AsyncClient, stripe_base: str | None) -> None:
        self.client = client
        self.stripe_base = stripe_base
        self.sent: set[tuple[str, str]] = set()

    async def fill(self, form: dict, client_secret: str) -> dict[str, str]:
        data: dict[str, str] = {}
        for f in form["fields"]:
            name, kind = f.get("name"), f.get("type", "")
            if not name or kind in ("submit", "button", "reset") or f["tag"] == "button" or "disabled" in f:
                continue
            if kind in ("checkbox", "radio") and "checked" not in f:
                continue
            value = f["value"]
            if f["tag"] == "select":
                chosen = [v for v, selected in f["options"] if selected]
                value = chosen[0] if chosen else (f["options"][0][0] if f["options"] else "")
                if not value:
                    value = FILLED.get(name) or next((v for v, _ in f["options"] if v), "")
            elif name == "payment_method" and not value:
                # The processor's frame or Elements hands the page a token for the card typed there.
                if self.stripe_base:
                    value = await stripe_payment_method(client_secret, self.stripe_base)
                else:
                    value = (await handed_card(self.client))["payment_method"]
            elif kind == "number":
                # One more user than the form shows: each form asks for something to do.
                value = str(int(value or 0) + 1) if value.isdigit() or not value else value
            elif not value and kind != "hidden":
                value = FILLED.get(name, "")
            data.setdefault(name, value)
        return data

    async def crawl(self, url: str, depth: int = 0) -> None:
        page = await self.client.get(url)
        assert page.status_code == 200, (url, page.text[:500])
        parser = Forms()
        parser.feed(page.text)
        for form in parser.forms:
            action = form["action"] or urlsplit(url).path
            if not BILLING_ROUTE.match(urlsplit(action).path):
                continue
            data = await self.fill(form, parser.client_secret)
            if form["method"] == "get":
                answer = await self.client.get(action, params=data)
            else:
                data.setdefault("_csrf_token", csrf_of(page.text))
                answer = await self.client.post(action, data=data)
            assert answer.status_code < 500, (url, action, answer.text[:500])
            self.sent.add((form["method"], re.sub(r"\d+", "N", urlsplit(action).path)))
            # A GET form's answer is the next page of its flow (a price to confirm): its forms too.
            if form["method"] == "get" and answer.status_code == 200 and depth < 2:
                await self.crawl(str(answer.url.copy_with(scheme=None, host=None, port=None)), depth + 1)


@pytest.fixture(params=["test", "stripe"])
def services(request):
    """The test processor's frame, or Stripe Elements against the run's localstripe."""
    settings = get_settings()
    if request.param == "stripe":
        localstripe = request.getfixturevalue("localstripe")
        settings = dataclasses.replace(
            settings,
            payment_processor="stripe",
            stripe_secret_key=SECRET_KEY,
            stripe_publishable_key=PUBLISHABLE_KEY,
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=localstripe.url,
        )
    else:
        settings = dataclasses.replace(settings, payment_processor="test")
    return build_services(settings)


@pytest.fixture
def received(app) -> Received:
    return Received(app)


@pytest.fixture
async def client(received):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=received), base_url="http://127.0.0.1:8000") as c:
        yield c


async def test_no_billing_route_receives_a_card_number_from_any_form_as_rendered(
    client, tree, received, services, request
):
    stripe_base = request.getfixturevalue("localstripe").url if services.card_entry.kind == "stripe" else None
    browser = Browser(client, stripe_base)
    await sign_in(client, tree.email("direct"))
    base = f"/companies/{tree.direct['id']}/billing"
    # Before anything is bought, buying (Pay Online: the card is asked on the price page),
    # then every page of a running subscription.
    for url in (base, f"{base}/account", f"{base}/buy"):
        await browser.crawl(url)
    for url in (base, f"{base}/add-users", f"{base}/change", f"{base}/account", f"{base}/subscriptions"):
        await browser.crawl(url)
    for invoice in await Invoice.select(Invoice.id).where(Invoice.company == tree.direct["id"]):
        await browser.crawl(f"/invoices/{invoice['id']}")

    assert received.card_data() == []
    forms = {path for _, path in browser.sent}
    # The forms that take a card, and those that spend money: each was sent.
    assert {
        "/companies/N/billing/buy/quote",
        "/companies/N/billing/buy",
        "/companies/N/billing/account",
        "/companies/N/billing/card",
        "/companies/N/billing/address",
        "/companies/N/billing/add-users/quote",
        "/companies/N/billing/add-users",
        "/companies/N/billing/change/quote",
        "/companies/N/billing/change",
    } <= forms, sorted(forms)
    # And what was sent did something: the purchase, its card, the added users.
    subscription = await Subscription.select().where(Subscription.company == tree.direct["id"]).first()
    assert subscription is not None and subscription["extra_users"] >= 1
    account = await BillingAccount.select().where(BillingAccount.company == tree.direct["id"]).first()
    assert account["card_last4"] == "4242" and account["country"] == "GB"


async def test_the_check_finds_a_card_number_sent_by_hand(client, tree, received):
    """The check can fail: a hand-made post of a card's fields is seen on the way in."""
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    page = await client.get(f"{base}/account")
    await client.post(
        f"{base}/account",
        data={"payment_method": "4242-4242-4242-4242", "cvc": "123", "_csrf_token": csrf_of(page.text)},
    )
    assert sorted(why for _, _, _, why in received.card_data()) == ["holds a card number", "named like a card field"]
    assert card_numbers_in("4000 0566 5566 5556") == ["4000056655665556"]
    assert card_numbers_in("4242 4242 4242 4241") == []  # fails Luhn
    assert card_numbers_in("INV-000123") == []
