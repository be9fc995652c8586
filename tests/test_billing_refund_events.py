"""Stripe's charge.refunded event against the portal's refunds
(portal/domain/billing/stripe_events.py, refunds.record_outside_refund), on the
engine of the run: a refund the portal made is reconciled (no second credit note);
a refund made in Stripe's dashboard is recorded with a credit note, once however
often and however many events report it."""

from __future__ import annotations

import asyncio
import json

from portal.domain.billing import refunds, stripe_events
from portal.tables import AuditEntry
from portal.tables.billing import Charge, CreditNote, Refund
from tests.support import PROCESSOR
from tests.test_billing_subscriptions import NOW, actors, bought_online
from tests.test_billing_webhooks import deliver, event, services, signed  # noqa: F401 (services: the app's fixture)


def refunded(charge: dict, total_cents: int) -> dict:
    """Stripe's Charge object as charge.refunded carries it: the running total refunded."""
    return {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": charge["processor_ref"],
        "amount": charge["amount_cents"],
        "amount_refunded": total_cents,
        "currency": "usd",
    }


async def arrives(event_id: str, obj: dict) -> str:
    payload = json.dumps(event(event_id, "charge.refunded", obj))
    await stripe_events.receive(event_id, "charge.refunded", payload, NOW)
    return await stripe_events.process(event_id, NOW)


async def test_a_refund_the_portal_made_is_reconciled_and_one_made_in_the_dashboard_is_credited(client, app, tree):
    bought = await bought_online(tree)
    _, seller = await actors(tree)
    charge = await Charge.select().where(Charge.invoice == bought["invoice"]["id"]).first()
    await refunds.refund(seller, bought["invoice"]["id"], 1000, "Goodwill", "k", NOW, processor=PROCESSOR)

    # Stripe reports the portal's own refund: nothing more is recorded.
    await deliver(client, app, signed(event("evt_own", "charge.refunded", refunded(charge, 1000))))
    assert await Refund.count() == 1 and await CreditNote.count() == 1
    row = await AuditEntry.select().where(AuditEntry.action == "invoice.refunded").first()
    assert row is not None

    # 5.00 more refunded in Stripe's dashboard: recorded, with the next credit note.
    dashboard = signed(event("evt_dash", "charge.refunded", refunded(charge, 1500)))
    await deliver(client, app, dashboard)
    await deliver(client, app, dashboard)  # replayed
    rows = await Refund.select().order_by(Refund.id)
    assert [(r["amount_cents"], r["status"], r["reason"]) for r in rows] == [
        (1000, "succeeded", "Goodwill"),
        (500, "succeeded", refunds.OUTSIDE_REASON),
    ]
    notes = await CreditNote.select().order_by(CreditNote.number)
    assert [(n["number"], n["total_cents"]) for n in notes] == [(1, 1000), (2, 500)]
    assert rows[1]["credit_note"] == notes[1]["id"]


async def test_ten_events_reporting_one_dashboard_refund_at_once_record_it_once(tree):
    bought = await bought_online(tree)
    charge = await Charge.select().where(Charge.invoice == bought["invoice"]["id"]).first()
    outcomes = await asyncio.gather(*(arrives(f"evt_{n}", refunded(charge, 2500)) for n in range(10)))
    assert outcomes == ["processed"] * 10
    assert [(r["amount_cents"], r["charge"]) for r in await Refund.select()] == [(2500, charge["id"])]
    assert await CreditNote.count() == 1
    # The whole rest refunded later in the dashboard: what is left, not more.
    total = charge["amount_cents"]
    assert await arrives("evt_all", refunded(charge, total)) == "processed"
    assert sum(r["amount_cents"] for r in await Refund.select()) == total
    assert sum(n["total_cents"] for n in await CreditNote.select()) == total
    assert await arrives("evt_all_again", refunded(charge, total)) == "processed"
    assert await Refund.count() == 2
