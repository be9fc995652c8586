"""Stripe's webhook, POST /webhooks/stripe (portal/web/billing/webhooks.py,
portal/domain/billing/stripe_events.py): webhook signature failures, replays and
out-of-order delivery, on the engine of the run.

Events are signed here as Stripe signs them (`Stripe-Signature: t=<ts>,v1=<hex
HMAC-SHA256 of "<ts>.<body>">` with the endpoint's secret) and posted through the
app; the job each queues is run (a burst arq worker on Redis, else the in-process
queue) and waited for. The 3-D Secure case
whose tab was closed runs end to end against localstripe: the PaymentIntent in the
event is the one the fake holds once the bank agreed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from portal.domain.billing import accounts, payments, settlement, stripe_events, subscriptions
from portal.domain.billing.payments import ChargeResult, TestProcessor
from portal.domain.billing.quotes import format_day
from portal.domain.billing.renewal import online
from portal.domain.clock import utcnow
from portal.jobs.tasks import FUNCTIONS
from portal.services import Services
from portal.stripe_processor import StripeProcessor
from portal.tables import AuditEntry, LicenceBatch, OutboxEmail
from portal.tables.billing import BillingAccount, Charge, Invoice, StripeEvent, Subscription
from tests.stripe_server import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET
from tests.support import PROCESSOR, card_token, csrf_of, run_burst_worker, running, sign_in
from tests.test_billing_subscriptions import ADDRESS, GOOD_CARD, NOW, actors, bought_online, pro

URL = "/webhooks/stripe"
NEEDS_3DS = "4000002760003184"


@pytest.fixture
def services():
    return Services(processor=PROCESSOR, webhook_secret=WEBHOOK_SECRET)


def signed(event: dict, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    stamp = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"stripe-signature": f"t={stamp},v1={signature}", "content-type": "application/json"}


def event(event_id: str, kind: str, obj: dict) -> dict:
    return {"id": event_id, "object": "event", "type": kind, "created": int(time.time()), "data": {"object": obj}}


async def deliver(client: httpx.AsyncClient, app, body_and_headers: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = body_and_headers
    answer = await client.post(URL, content=body, headers=headers)
    # Whatever queue the app has: a burst arq worker on Redis, or the in-process queue.
    if os.environ.get("REDIS_URL"):
        await run_burst_worker(FUNCTIONS, os.environ["REDIS_URL"])
    else:
        await app.state.jobs.drain()
    return answer


async def statuses() -> dict[str, str]:
    return {row["event_id"]: row["status"] for row in await StripeEvent.select()}


async def test_a_forged_or_stale_event_is_refused_and_nothing_is_kept(client, app, tree):
    bought = await bought_online(tree)
    ref = (await Charge.select().where(Charge.invoice == bought["invoice"]["id"]).first())["processor_ref"]
    failed = event("evt_forged", "payment_intent.payment_failed", {"id": ref, "object": "payment_intent"})
    body, headers = signed(failed)
    tampered = body.replace(b"payment_failed", b"payment_faileD")
    refused = [
        await client.post(URL, content=tampered, headers=headers),  # the body changed after signing
        await deliver(client, app, signed(failed, secret="whsec_someone_else")),
        await deliver(client, app, signed(failed, at=int(time.time()) - 3600)),  # an old delivery replayed
        await client.post(URL, content=body, headers={"content-type": "application/json"}),  # no signature
        await client.post(URL, content=b"\xff\xfe", headers=signed(failed)[1]),  # not even text
    ]
    assert [answer.status_code for answer in refused] == [400] * 5
    assert "not valid" in refused[0].json()["error"]
    assert await StripeEvent.count() == 0
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charge_failed") == 0

    accepted = await deliver(client, app, signed(failed))
    assert accepted.status_code == 200 and await statuses() == {"evt_forged": "processed"}


async def test_without_a_webhook_secret_the_endpoint_is_not_there():
    from portal.web.app import create_app

    async with running(create_app(sign_ins_per_minute=1000, services=Services(processor=PROCESSOR))) as bare:
        transport = httpx.ASGITransport(app=bare)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            body, headers = signed(event("evt_1", "customer.created", {}))
            answer = await http.post(URL, content=body, headers=headers)
    assert answer.status_code == 404 and await StripeEvent.count() == 0


async def test_a_replayed_event_changes_nothing_twice(client, app, tree):
    bought = await bought_online(tree)
    ref = (await Charge.select().where(Charge.invoice == bought["invoice"]["id"]).first())["processor_ref"]
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "payment_intent": ref,
        "amount": bought["invoice"]["total_cents"],
        "currency": "usd",
        "reason": "fraudulent",
        "evidence_details": {"due_by": int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())},
    }
    disputed = signed(event("evt_dispute", "charge.dispute.created", dispute))
    for _ in range(3):
        assert (await deliver(client, app, disputed)).status_code == 200
    # The same dispute again under another event id (Stripe resends with a new id after an outage).
    await deliver(client, app, signed(event("evt_dispute_again", "charge.dispute.created", dispute)))
    assert await StripeEvent.count() == 2
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.disputed") == 2
    mails = await OutboxEmail.select().where(OutboxEmail.kind == "payment_disputed")
    assert [m["to_email"] for m in mails] == [tree.email("sub")]  # the seller's account manager, once
    assert "disputes the payment" in mails[0]["body"] and "by 01 Apr 2026" in mails[0]["body"]

    refund = {"id": "ch_1", "object": "charge", "payment_intent": ref, "amount_refunded": 500, "currency": "usd"}
    refunded = signed(event("evt_refund", "charge.refunded", refund))
    await deliver(client, app, refunded)
    await deliver(client, app, refunded)
    entries = await AuditEntry.select().where(AuditEntry.action == "invoice.refunded")
    assert len(entries) == 1 and json.loads(entries[0]["detail"])["amount_refunded_cents"] == 500

    await deliver(client, app, signed(event("evt_other", "customer.created", {"id": "cus_1"})))
    assert (await statuses())["evt_other"] == "ignored"


async def test_a_failure_arriving_after_its_success_undoes_nothing(client, app, tree):
    bought = await bought_online(tree)
    invoice = bought["invoice"]
    charge = await Charge.select().where(Charge.invoice == invoice["id"]).first()
    intent = {
        "id": charge["processor_ref"],
        "object": "payment_intent",
        "amount": invoice["total_cents"],
        "currency": "usd",
        "metadata": {"charge_key": charge["idempotency_key"]},
        "last_payment_error": {"message": "Your card was declined."},
    }
    await deliver(client, app, signed(event("evt_ok", "payment_intent.succeeded", {**intent, "status": "succeeded"})))
    await deliver(client, app, signed(event("evt_late", "payment_intent.payment_failed", intent)))
    assert await statuses() == {"evt_ok": "processed", "evt_late": "processed"}
    assert (await Charge.select(Charge.status).where(Charge.id == charge["id"]).first())["status"] == "succeeded"
    assert (await Invoice.select(Invoice.status).where(Invoice.id == invoice["id"]).first())["status"] == "paid"
    assert (
        await AuditEntry.count().where(AuditEntry.action.is_in(["invoice.charge_failed", "invoice.charge_confirmed"]))
        == 0
    )
    outcomes = {row["event_id"]: row["outcome"] for row in await StripeEvent.select()}
    assert outcomes == {"evt_ok": "recorded already", "evt_late": "charge succeeded: unchanged"}


async def test_a_card_ending_before_the_renewal_e_mails_the_customers_managers_once(client, app, tree):
    bought = await bought_online(tree, at=utcnow() - timedelta(days=30))
    end = bought["subscription"]["term_end"]
    account = await BillingAccount.select().where(BillingAccount.company == tree.north["id"]).first()
    before = end - timedelta(days=62)
    expiring = {"id": account["card_token"], "object": "card", "exp_month": before.month, "exp_year": before.year}
    for _ in range(2):
        await deliver(client, app, signed(event("evt_expiring", "customer.source.expiring", expiring)))
    mails = await OutboxEmail.select().where(OutboxEmail.kind == "card_expiring")
    assert [m["to_email"] for m in mails] == [tree.email("north")]
    assert mails[0]["subject"] == f"Update your card before your renewal on {format_day(end)}"
    kept = await BillingAccount.select().where(BillingAccount.id == account["id"]).first()
    assert kept["card_expires"] == f"{before.year:04d}-{before.month:02d}"

    # The network gave the card a new expiry, after the renewal: kept, and nobody e-mailed.
    later = {
        "id": account["card_token"],
        "object": "payment_method",
        "card": {"exp_month": 4, "exp_year": end.year + 3, "last4": "4242", "brand": "visa"},
    }
    await deliver(client, app, signed(event("evt_updated", "payment_method.automatically_updated", later)))
    kept = await BillingAccount.select().where(BillingAccount.id == account["id"]).first()
    assert kept["card_expires"] == f"{end.year + 3:04d}-04"
    assert await OutboxEmail.count().where(OutboxEmail.kind == "card_expiring") == 1

    # A card the portal does not keep: stored, ignored.
    await deliver(client, app, signed(event("evt_stranger", "customer.source.expiring", {**expiring, "id": "card_x"})))
    assert (await statuses())["evt_stranger"] == "ignored"


async def test_an_event_whose_job_was_lost_is_processed_by_the_billing_tick(tree):
    bought = await bought_online(tree)
    charge = await Charge.select().where(Charge.invoice == bought["invoice"]["id"]).first()
    now = utcnow()
    lost = event("evt_lost", "payment_intent.payment_failed", {"id": charge["processor_ref"]})
    assert await stripe_events.receive("evt_lost", lost["type"], json.dumps(lost), now)
    assert not await stripe_events.receive("evt_lost", lost["type"], json.dumps(lost), now)
    assert await stripe_events.process_waiting(now) == 0  # its job may still be on its way
    assert await stripe_events.process_waiting(now + stripe_events.WAITING_AFTER * 2) == 1
    assert await stripe_events.process_waiting(now + stripe_events.WAITING_AFTER * 2) == 0
    assert await statuses() == {"evt_lost": "processed"}


@pytest.fixture
def stripe_processor(localstripe) -> StripeProcessor:
    return StripeProcessor(SECRET_KEY, api_base=localstripe.url)


async def test_a_3d_secure_payment_confirmed_in_a_closed_tab_is_recorded_by_its_event(
    client, app, tree, stripe_processor, localstripe
):
    """The renewal's charge waits for the cardholder; they confirm with their bank and
    close the tab before the page reports back. Stripe's payment_intent.succeeded
    records it: charge, invoice paid, the next term provisioned, once; its replay,
    a failure delivered late and the page reporting back after all change nothing."""
    from tests.test_billing_stripe import browser_sets_up

    customer, _ = await actors(tree)
    method = await browser_sets_up(stripe_processor, localstripe.url)
    account = accounts.OnlineAccount(payment_method=method, **ADDRESS)
    start = utcnow() - timedelta(days=360)
    bought = await subscriptions.buy(
        customer, tree.north["id"], pro(0), start, account=account, processor=stripe_processor
    )
    held = await browser_sets_up(stripe_processor, localstripe.url, NEEDS_3DS)
    await accounts.save_card(customer, tree.north["id"], held, start, processor=stripe_processor)
    end = bought["subscription"]["term_end"]
    counts = await online.renew_due(end - timedelta(hours=12), processor=stripe_processor)
    assert (counts["claimed"], counts["declined"]) == (1, 1)
    renewal = await Invoice.select().where(Invoice.kind == "renewal").first()
    charge = await Charge.select().where(Charge.invoice == renewal["id"]).first()
    assert (charge["status"], charge["decline_reason"]) == ("declined", payments.NEEDS_AUTHENTICATION)

    # Before the bank agreed: Stripe says the payment failed; audited, the link still works.
    waiting = stripe_processor.client.v1.payment_intents.retrieve(charge["processor_ref"])
    assert waiting.metadata["charge_key"] == charge["idempotency_key"]
    await deliver(client, app, signed(event("evt_failed", "payment_intent.payment_failed", waiting.to_dict())))
    assert (await Charge.select(Charge.status).where(Charge.id == charge["id"]).first())["status"] == "declined"
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charge_failed") == 1

    _, secret = await stripe_processor.confirmation(charge["processor_ref"])
    async with httpx.AsyncClient() as http:  # Stripe.js once the bank agrees; then the tab is closed
        agreed = await http.post(
            f"{localstripe.url}/v1/payment_intents/{charge['processor_ref']}/_authenticate?success=true",
            json={"key": PUBLISHABLE_KEY, "client_secret": secret},
        )
    assert agreed.status_code == 200, agreed.text
    paid_intent = stripe_processor.client.v1.payment_intents.retrieve(charge["processor_ref"]).to_dict()
    assert paid_intent["status"] == "succeeded"
    succeeded = signed(event("evt_paid", "payment_intent.succeeded", paid_intent))
    assert (await deliver(client, app, succeeded)).status_code == 200

    assert (await Charge.select(Charge.status).where(Charge.id == charge["id"]).first())["status"] == "succeeded"
    assert (await Invoice.select(Invoice.status).where(Invoice.id == renewal["id"]).first())["status"] == "paid"
    renewed = await Subscription.select().where(Subscription.id == bought["subscription"]["id"]).first()
    assert renewed["term_end"] > end

    # Replayed, delivered again under a new id, a failure arriving late, the page reporting back at last.
    await deliver(client, app, succeeded)
    await deliver(client, app, signed(event("evt_paid_again", "payment_intent.succeeded", paid_intent)))
    await deliver(client, app, signed(event("evt_late", "payment_intent.payment_failed", paid_intent)))
    await sign_in(client, tree.email("north"))
    link = f"/invoices/{renewal['id']}/confirm-payment"
    page = await client.get(link)
    assert (await client.post(link, data={"_csrf_token": csrf_of(page.text)})).status_code == 302

    assert await Charge.count().where((Charge.invoice == renewal["id"]) & (Charge.status == "succeeded")) == 1
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charge_confirmed") == 1
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charged_not_issued") == 0
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charge_failed") == 1
    again = await Subscription.select().where(Subscription.id == bought["subscription"]["id"]).first()
    assert again["term_end"] == renewed["term_end"] and again["batch"] == renewed["batch"]
    assert (await statuses())["evt_paid"] == "processed"


class HeldProcessor(TestProcessor):
    """Every charge waits for its cardholder (3-D Secure); `meanwhile` runs while the
    confirmation page asks whether the bank agreed: Stripe's event arriving then."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    async def charge(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> ChargeResult:
        taken = await super().charge(token, amount_cents, currency, idempotency_key)
        ref = taken.reference
        return ChargeResult(ok=False, reference=ref, decline_reason=payments.NEEDS_AUTHENTICATION, requires_action=ref)

    async def confirmation(self, reference: str) -> tuple[str, str | None]:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            await meanwhile()
        return "succeeded", None


async def test_the_page_reporting_back_while_the_event_records_the_payment_records_it_once(tree):
    customer, _ = await actors(tree)
    processor = HeldProcessor()
    await accounts.create_online_billing_account(
        customer, tree.north["id"], payment_method=await card_token(GOOD_CARD), now=NOW, **ADDRESS, processor=processor
    )
    bought = await subscriptions.buy(customer, tree.north["id"], pro(), NOW, processor=processor)
    invoice = bought["invoice"]
    charge = await Charge.select().where(Charge.invoice == invoice["id"]).first()
    assert (charge["status"], charge["decline_reason"]) == ("declined", payments.NEEDS_AUTHENTICATION)
    intent = {
        "id": charge["processor_ref"],
        "object": "payment_intent",
        "status": "succeeded",
        "amount": invoice["total_cents"],
        "currency": invoice["currency"].lower(),
        "metadata": {"charge_key": charge["idempotency_key"]},
    }

    async def event_arrives() -> None:
        paid = event("evt_paid", "payment_intent.succeeded", intent)
        assert await stripe_events.receive("evt_paid", paid["type"], json.dumps(paid), NOW)
        assert await stripe_events.process("evt_paid", NOW) == "processed"

    processor.meanwhile = event_arrives
    result = await settlement.confirm_payment(customer, invoice["id"], NOW, processor=processor)
    assert result["repeat"] is True and result["invoice"]["status"] == "paid"
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charge_confirmed") == 1
    # Not a payment taken for an invoice no longer issued: nothing to refund.
    assert await AuditEntry.count().where(AuditEntry.action == "invoice.charged_not_issued") == 0
    assert await LicenceBatch.count().where(LicenceBatch.company == tree.north["id"]) == 1
