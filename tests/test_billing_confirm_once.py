"""Anything that moves money or seats applies once when the same confirmation arrives
ten times at once (a double click, a retried request, two tabs): buy, Upgrade, Add
users, Pay Online and a recorded payment, through HTTP as a browser posts them, on
both engines. The processor answers after a short wait, as a real one does, so that
confirmations arrive while the first is being charged and after it was."""

from __future__ import annotations

import asyncio
import re

import pytest

from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import payments
from portal.domain.billing.payments import TestProcessor
from portal.tables import LicenceBatch
from portal.tables.billing import Charge, Invoice, Subscription
from tests.support import csrf_of, handed_card, sign_in
from tests.test_billing_web import ADDRESS, CARD, buy, flashes, quoted_fields

TIMES = 10
LITE_ONLINE = {"tier": "lite", "extra_users": "0", "read_only_users": "0", "method": "online"}


class NetworkProcessor(TestProcessor):
    """The test processor, answering after a round trip's wait."""

    # While set, every charge is declined (the card's bank says no).
    declining = False

    async def charge(self, token, amount_cents, currency, idempotency_key):
        await asyncio.sleep(0.02)
        if self.declining:
            return payments.ChargeResult(ok=False, reference=None, decline_reason=payments.CARD_DECLINED)
        return await super().charge(token, amount_cents, currency, idempotency_key)


@pytest.fixture
def processor():
    """The processor the app is handed (conftest's `services` and `app`)."""
    return NetworkProcessor()


async def ten_at_once(client, action: str, data: dict) -> list[int]:
    """Ten posts of one form, started a few milliseconds apart as clicks and retries
    arrive: before, during and after the first one's charge."""

    async def post(delay: float):
        await asyncio.sleep(delay)
        return await client.post(action, data=data)

    answers = await asyncio.gather(*(post(0.004 * i) for i in range(TIMES)))
    statuses = [answer.status_code for answer in answers]
    assert all(status in (302, 303, 400) for status in statuses), [a.text[:300] for a in answers]
    return statuses


async def opened_form(client, page: str) -> dict:
    opened = await client.get(page)
    assert opened.status_code == 200, opened.text[:500]
    return {**quoted_fields(opened.text), "_csrf_token": csrf_of(opened.text)}


async def seats_running(company_id: int) -> int:
    rows = await LicenceBatch.select(LicenceBatch.seats).where(LicenceBatch.company == company_id)
    return sum(row["seats"] for row in rows)


async def lite_online(client, tree) -> dict:
    await sign_in(client, tree.email("north"))
    bought = await buy(client, tree.north["id"], LITE_ONLINE, {**CARD, **ADDRESS})
    assert bought.status_code == 302, bought.text[:2000]
    subscription = await Subscription.select().first()
    assert subscription is not None and subscription["status"] == "active"
    return subscription


async def expected_seats(partner_id: int, tier: str, extra_users: int) -> int:
    return billing_catalogue.seats_of(await billing_catalogue.item(partner_id, tier), extra_users)


async def test_ten_identical_buy_confirmations_buy_once(client, tree, processor):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    query = "&".join(f"{k}={v}" for k, v in LITE_ONLINE.items())
    form = await opened_form(client, f"{base}/buy/quote?{query}")
    statuses = await ten_at_once(
        client, f"{base}/buy", {**LITE_ONLINE, **(await handed_card(client)), **ADDRESS, **form}
    )
    assert statuses == [302] * TIMES
    assert await Subscription.count() == 1 and await Invoice.count() == 1
    assert await Charge.count().where(Charge.status == "succeeded") == 1
    assert len(processor.calls) == 1
    subscription = await Subscription.select().first()
    assert await seats_running(tree.north["id"]) == await expected_seats(subscription["partner"], "lite", 0)


@pytest.mark.parametrize(
    ("tier", "extra_users"),
    [("pro", 5), ("lite", 5)],
    ids=["upgrade-lite-to-pro-with-5-users", "add-5-users"],
)
async def test_ten_identical_change_confirmations_charge_and_apply_once(client, tree, processor, tier, extra_users):
    subscription = await lite_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    change = {"tier": tier, "extra_users": str(extra_users), "read_only_users": "0"}
    form = await opened_form(client, f"{base}/change/quote?tier={tier}&extra_users={extra_users}&read_only_users=0")
    calls_before = len(processor.calls)

    statuses = await ten_at_once(client, f"{base}/change", {**change, **form})

    # Every arrival of the one confirmation answers as it did: to the Billing page.
    assert statuses == [302] * TIMES
    await applied_once(subscription, tier, extra_users)
    assert len(processor.calls) - calls_before == 1


async def test_ten_identical_add_users_confirmations_charge_and_add_once(client, tree, processor):
    """ "Add users" counts from the credits held when applied: ten arrivals of one
    confirmation would add 50 users if each were applied."""
    subscription = await lite_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    added = {"standard_users": "5", "read_only_users": "0"}
    form = await opened_form(client, f"{base}/add-users/quote?standard_users=5&read_only_users=0")
    calls_before = len(processor.calls)

    statuses = await ten_at_once(client, f"{base}/add-users", {**added, **form})

    assert statuses == [302] * TIMES
    await applied_once(subscription, "lite", 5)
    assert len(processor.calls) - calls_before == 1


async def test_a_confirmation_sent_again_says_what_the_first_did(client, tree, processor):
    await lite_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    change = {"tier": "pro", "extra_users": "5", "read_only_users": "0"}
    form = await opened_form(client, f"{base}/change/quote?tier=pro&extra_users=5&read_only_users=0")
    first = await client.post(f"{base}/change", data={**change, **form})
    said = flashes((await client.get(first.headers["location"])).text)
    assert said == ["Charged $4,800.00 USD pro rata (invoice INV-00002)."]
    again = await client.post(f"{base}/change", data={**change, **form})
    assert again.status_code == 302
    said_again = flashes((await client.get(again.headers["location"])).text)
    assert said_again == [
        "This was confirmed already; nothing more was done. Invoice INV-00002 for $4,800.00 USD is paid."
    ]
    assert len(processor.calls) == 2  # the purchase and the change, once each


async def test_ten_confirmations_from_ten_quote_pages_change_once(client, tree, processor):
    """Ten tabs with the same Upgrade quoted, confirmed together: each is a confirmation
    of its own, and one change at a time is allowed, so one is applied."""
    subscription = await lite_online(client, tree)
    base = f"/companies/{tree.north['id']}/billing"
    change = {"tier": "pro", "extra_users": "5", "read_only_users": "0"}
    forms = [
        await opened_form(client, f"{base}/change/quote?tier=pro&extra_users=5&read_only_users=0") for _ in range(TIMES)
    ]

    async def post(i: int):
        await asyncio.sleep(0.004 * i)
        return await client.post(f"{base}/change", data={**change, **forms[i]})

    answers = await asyncio.gather(*(post(i) for i in range(TIMES)))
    assert sorted({answer.status_code for answer in answers}) in ([302], [302, 400])
    for answer in answers:
        if answer.status_code == 400:
            errors = re.findall(r'class="field-error"[^>]*>([^<]*)<', answer.text)
            assert errors, answer.text
            # Refused while the first is open, or after it: it is already the plan.
            said = ("An earlier change", "Nothing would change.")
            assert any(e.startswith(said) for e in errors), errors
    await applied_once(subscription, "pro", 5)


async def applied_once(subscription: dict, tier: str, extra_users: int) -> None:
    changes = await Invoice.select().where(Invoice.kind == "change")
    assert len(changes) == 1, [(i["id"], i["status"], i["total_cents"]) for i in changes]
    assert changes[0]["status"] == "paid"
    assert await Charge.count().where((Charge.invoice == changes[0]["id"]) & (Charge.status == "succeeded")) == 1
    now = await Subscription.select().where(Subscription.id == subscription["id"]).first()
    assert (now["tier"], now["extra_users"]) == (tier, extra_users)
    assert await seats_running(subscription["company"]) == await expected_seats(now["partner"], tier, extra_users)


async def test_ten_identical_pay_online_presses_charge_once(client, tree, processor):
    subscription = await lite_online(client, tree)
    # An Upgrade by invoice would wait for staff; an online one whose charge was
    # declined leaves its invoice to "Pay Online", as a declined renewal does.
    processor.declining = True
    base = f"/companies/{tree.north['id']}/billing"
    form = await opened_form(client, f"{base}/change/quote?tier=pro&extra_users=0&read_only_users=0")
    refused = await client.post(
        f"{base}/change", data={"tier": "pro", "extra_users": "0", "read_only_users": "0", **form}
    )
    assert refused.status_code in (302, 400)
    processor.declining = False
    invoice = await Invoice.select().where(Invoice.kind == "change").first()
    assert invoice is not None and invoice["status"] == "issued"

    page = await opened_form(client, f"/invoices/{invoice['id']}")
    calls_before = len(processor.calls)
    await ten_at_once(client, f"/invoices/{invoice['id']}/pay", {"_csrf_token": page["_csrf_token"]})

    assert await Charge.count().where((Charge.invoice == invoice["id"]) & (Charge.status == "succeeded")) == 1
    assert len(processor.calls) - calls_before == 1
    now = await Subscription.select().where(Subscription.id == subscription["id"]).first()
    assert now["tier"] == "pro"
    assert await seats_running(tree.north["id"]) == await expected_seats(now["partner"], "pro", 0)


async def test_ten_identical_recorded_payments_record_once(client, tree):
    await sign_in(client, tree.email("north"))
    by_invoice = {**LITE_ONLINE, "method": "invoice"}
    bought = await buy(client, tree.north["id"], by_invoice, ADDRESS)
    assert bought.status_code == 302, bought.text[:2000]
    invoice = await Invoice.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    form = await opened_form(client, f"/invoices/{invoice['id']}")

    statuses = await ten_at_once(
        client, f"/invoices/{invoice['id']}/payment", {"method": "bank_transfer", "reference": "BT 1", **form}
    )

    assert statuses.count(302) >= 1
    paid = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    assert paid["status"] == "paid" and paid["payment_reference"] == "BT 1"
    subscription = await Subscription.select().first()
    assert subscription["status"] == "active"
    assert await LicenceBatch.count() == 1
    assert await seats_running(tree.north["id"]) == await expected_seats(subscription["partner"], "lite", 0)
