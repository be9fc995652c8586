"""The invoice page's Refund (portal/web/billing/refund_pages.py) through HTTP as a
browser posts it, on the engine of the run: the form says what is left to refund,
the confirmation what will change, the invoice what changed; the credit note's page;
who sees and who may; ten identical confirmations at once refund once."""

from __future__ import annotations

import asyncio
import re

import pytest

from portal.domain.billing import refunds
from portal.tables import User
from portal.tables.billing import CreditNote, Refund
from tests.factories import T0, _hash
from tests.support import PROCESSOR, csrf_of, sign_in
from tests.test_billing_refunds import NetworkProcessor, paid_by_card, paid_by_hand
from tests.test_billing_subscriptions import NOW, actors
from tests.test_billing_web import flashes
from tests.test_read_only import _credits

TIMES = 10


@pytest.fixture
def processor():
    """The processor the app is handed (conftest's `services`)."""
    return NetworkProcessor()


async def confirmation(client, invoice_id: int, amount: str, reason: str = "Goodwill") -> tuple[str, dict]:
    page = await client.get(f"/invoices/{invoice_id}/refund")
    assert page.status_code == 200, page.text[:500]
    confirm = await client.post(
        f"/invoices/{invoice_id}/refund/confirm",
        data={"amount": amount, "reason": reason, "_csrf_token": csrf_of(page.text)},
    )
    assert confirm.status_code == 200, confirm.text[:1000]
    key = re.search(r'name="key" value="([^"]+)"', confirm.text)
    assert key
    return confirm.text, {"amount": amount, "reason": reason, "key": key.group(1), "_csrf_token": csrf_of(confirm.text)}


async def test_staff_refund_part_of_a_card_payment_and_see_what_changed(client, tree, processor):
    invoice = await paid_by_card(tree)
    await sign_in(client, tree.email("sub"))
    shown = await client.get(f"/invoices/{invoice['id']}")
    assert 'data-testid="refund-link"' in shown.text
    form = await client.get(f"/invoices/{invoice['id']}/refund")
    total = invoice["total_cents"]
    assert f'value="{total // 100}.{total % 100:02d}"' in form.text  # the whole of it, unless changed

    said, fields = await confirmation(client, invoice["id"], "100.05")
    assert "Refund $100.05 USD to the card ending 4242 and issue a credit note" in said
    assert await Refund.count() == 0  # the confirmation changes nothing
    done = await client.post(f"/invoices/{invoice['id']}/refund", data=fields)
    assert done.status_code in (302, 303)
    page = await client.get(f"/invoices/{invoice['id']}")
    assert flashes(page.text) == [
        "Refunded $100.05 USD to the card. Credit note CN-000001 issued. The customer's managers are e-mailed."
    ]
    left = total - 10005
    assert f"${left // 100:,}.{left % 100:02d} USD of" in page.text
    note = await CreditNote.select().first()
    assert f'href="/credit-notes/{note["id"]}"' in page.text

    credit = await client.get(f"/credit-notes/{note['id']}")
    assert credit.status_code == 200
    assert "Credit note CN-000001" in credit.text and "Reason: Goodwill" in credit.text
    assert "$100.05 USD" in credit.text and "to the card ending 4242" in credit.text


async def test_bad_amounts_and_a_missing_reason_are_said_beside_their_fields(client, tree):
    invoice = await paid_by_card(tree)
    await sign_in(client, tree.email("sub"))
    page = await client.get(f"/invoices/{invoice['id']}/refund")
    for amount, reason, message in [
        ("ten", "Why", "Enter an amount in dollars and cents, like 120.50."),
        ("0", "Why", "Enter an amount from 0.01 to"),
        ("99999999", "Why", "Enter an amount from 0.01 to"),
        ("1.005", "Why", "Enter an amount in dollars and cents"),
        ("5", " ", "Say why the money is refunded."),
    ]:
        answer = await client.post(
            f"/invoices/{invoice['id']}/refund/confirm",
            data={"amount": amount, "reason": reason, "_csrf_token": csrf_of(page.text)},
        )
        assert answer.status_code == 400 and message in answer.text, (amount, answer.text[:300])
    assert await Refund.count() == 0


async def test_a_payment_recorded_by_hand_says_the_seller_returns_it(client, tree):
    invoice = await paid_by_hand(tree)
    await sign_in(client, tree.email("sub"))
    said, fields = await confirmation(client, invoice["id"], "20")
    assert "Record $20.00 USD as refunded (you return it to the customer yourself" in said
    await client.post(f"/invoices/{invoice['id']}/refund", data=fields)
    page = await client.get(f"/invoices/{invoice['id']}")
    assert "Recorded $20.00 USD as refunded: return it to the customer yourself." in flashes(page.text)[0]
    assert "to be returned by the seller" in page.text


async def test_customer_managers_and_read_only_staff_cannot_refund(client, tree):
    invoice = await paid_by_card(tree)
    await sign_in(client, tree.email("north"))
    shown = await client.get(f"/invoices/{invoice['id']}")
    assert shown.status_code == 200 and 'data-testid="refund-link"' not in shown.text
    assert (await client.get(f"/invoices/{invoice['id']}/refund")).status_code == 403
    refused = await client.post(
        f"/invoices/{invoice['id']}/refund",
        data={"amount": "1", "reason": "x", "key": "k", "_csrf_token": csrf_of(shown.text)},
    )
    assert refused.status_code == 403

    await client.post("/logout", data={"_csrf_token": csrf_of(shown.text)})
    client.cookies.clear()
    await _credits(tree.sub, 1)
    await User.insert(
        User(
            company=tree.sub["id"],
            email="viewer@sub.example",
            name="Vera",
            role="read_only",
            password_hash=_hash(),
            created_at=T0,
        )
    )
    await sign_in(client, "viewer@sub.example")
    shown = await client.get(f"/invoices/{invoice['id']}")
    assert shown.status_code == 200 and 'data-testid="refund-link"' not in shown.text
    refused = await client.post(
        f"/invoices/{invoice['id']}/refund",
        data={"amount": "1", "reason": "x", "key": "k", "_csrf_token": csrf_of(shown.text)},
    )
    assert refused.status_code == 403
    assert await Refund.count() == 0


async def test_another_partners_invoice_and_credit_note_are_not_found(client, tree):
    invoice = await paid_by_card(tree)
    _, seller = await actors(tree)
    await refunds.refund(seller, invoice["id"], 100, "x", "k", NOW, processor=PROCESSOR)
    note = await CreditNote.select().first()
    await sign_in(client, tree.email("other"))
    assert (await client.get(f"/invoices/{invoice['id']}/refund")).status_code == 404
    assert (await client.get(f"/credit-notes/{note['id']}")).status_code == 404


async def test_ten_identical_refund_confirmations_through_http_refund_once(client, tree, processor):
    invoice = await paid_by_card(tree)
    await sign_in(client, tree.email("sub"))
    _, fields = await confirmation(client, invoice["id"], "50.00")

    async def post(delay: float):
        await asyncio.sleep(0.004 * delay)
        return await client.post(f"/invoices/{invoice['id']}/refund", data=fields)

    answers = await asyncio.gather(*(post(i) for i in range(TIMES)))
    assert [a.status_code for a in answers] == [302] * TIMES
    assert await Refund.count() == 1 and await CreditNote.count() == 1
    assert len(processor.refunds) == 1
    assert (await Refund.select().first())["amount_cents"] == 5000
