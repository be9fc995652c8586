"""Cancelling (seed 000): an online subscription's Cancel and its undo; an
invoice subscription's "Request cancellation", which partner staff confirm (and
may undo before the end). Either way nothing renews; the term runs to its end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal import db
from portal.domain import audit, outbox
from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.billing import invoices, locks, quotes
from portal.domain.billing.quotes import format_day, refuse_read_only
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import ValidationFailed
from portal.tables import AuditEntry, Company
from portal.tables.billing import Subscription, SubscriptionStatus


async def _set_cancelled(actor: Actor, subscription: dict[str, Any], action: str, now: datetime) -> dict[str, Any]:
    """Nothing renews any more; a running term runs to its end. A pending one ends now,
    and its purchase with it: the invoice void (nothing left to pay for), its order
    withdrawn from Requested Orders. "voided_invoices": their numbers."""
    changes: dict[Any, Any] = {"auto_renew": False, "cancelled_at": now}
    voided: list[dict[str, Any]] = []
    if subscription["status"] == SubscriptionStatus.PENDING:
        changes["status"] = SubscriptionStatus.ENDED
        voided = await invoices.void_unpaid_purchase(actor, subscription["id"], now)
    await Subscription.update(changes).where(Subscription.id == subscription["id"])
    await audit.record(
        actor,
        action,
        subscription["company"],
        now,
        {
            "subscription": subscription["id"],
            "ends_at": (subscription["term_end"] or now).isoformat(),
            "voided_invoices": [i["id"] for i in voided],
            # Read by cancelled_by_staff: only staff undo what staff did.
            "by_staff": actor.is_partner_manager,
        },
    )
    return {
        **subscription,
        **changes,
        "ends_at": subscription["term_end"] or now,
        "voided_invoices": [invoices.format_invoice_number(i["number"]) for i in voided],
    }


STAFF_CANCELLED = "Your partner's staff cancelled this subscription: ask them to undo it."
_CANCEL_ACTIONS = ("subscription.cancel", "subscription.confirm_cancellation")


async def cancelled_by_staff(subscription: dict[str, Any]) -> bool:
    """Whether the subscription's cancellation was made by partner staff (confirmed, or
    Cancel pressed in manage mode), from its audit entry: the last cancellation of it."""
    if subscription["auto_renew"]:
        return False
    entries = (
        await AuditEntry.select(AuditEntry.action, AuditEntry.detail)
        .where((AuditEntry.company == subscription["company"]) & AuditEntry.action.is_in(list(_CANCEL_ACTIONS)))
        .order_by(AuditEntry.id, ascending=False)
        .output(load_json=True)
    )
    for entry in entries:  # a company's cancellations: a handful
        detail = entry["detail"] or {}
        if detail.get("subscription") == subscription["id"]:
            return bool(detail.get("by_staff", entry["action"] == "subscription.confirm_cancellation"))
    return False


def _check_live(subscription: dict[str, Any], now: datetime) -> None:
    ended = subscription["status"] not in quotes.LIVE or (
        subscription["term_end"] is not None and subscription["term_end"] <= now
    )
    if ended:
        raise ValidationFailed({"subscription": "This subscription has ended."})


async def cancel(actor: Actor, subscription_id: int, now: datetime) -> dict[str, Any]:
    """Pay Online: auto-renewal stops; the licence runs to its end date ("ends_at").
    Undo with undo_cancel before then."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await locks.lock_subscription(actor, subscription_id)
        _check_live(subscription, now)
        if subscription["method"] != "online":
            raise ValidationFailed(
                {
                    "subscription": "A subscription paid by invoice is cancelled by partner staff: "
                    "use “Request cancellation”."
                }
            )
        if not subscription["auto_renew"]:
            raise ValidationFailed(
                {"subscription": f"Already cancelled: it runs until {format_day(subscription['term_end'] or now)}."}
            )
        return await _set_cancelled(actor, subscription, "subscription.cancel", now)


async def undo_cancel(actor: Actor, subscription_id: int, now: datetime) -> dict[str, Any]:
    """Before the end, a cancelled subscription renews again. One paid by invoice
    was cancelled by partner staff, so only they undo it; so is one paid online that
    they cancelled."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await locks.lock_subscription(actor, subscription_id)
        _check_live(subscription, now)
        if subscription["method"] != "online":
            require_partner_manager(actor)
            require(actor, Capability.INVOICES)
        if subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is not cancelled."})
        if not actor.is_partner_manager and await cancelled_by_staff(subscription):
            raise ValidationFailed({"subscription": STAFF_CANCELLED})
        changes: dict[Any, Any] = {"auto_renew": True, "cancelled_at": None, "cancel_requested_at": None}
        await Subscription.update(changes).where(Subscription.id == subscription["id"])
        await audit.record(
            actor, "subscription.undo_cancel", subscription["company"], now, {"subscription": subscription["id"]}
        )
    return {**subscription, **changes}


async def request_cancellation(actor: Actor, subscription_id: int, now: datetime) -> dict[str, Any]:
    """Pay by Invoice: "Request cancellation" e-mails the seller's managers, who
    confirm it. Asked twice, it stays one request."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await locks.lock_subscription(actor, subscription_id)
        _check_live(subscription, now)
        if subscription["method"] != "invoice":
            raise ValidationFailed({"subscription": "A subscription paid online is cancelled with Cancel."})
        if not subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is already cancelled."})
        if subscription["cancel_requested_at"] is not None:
            return subscription
        await Subscription.update({Subscription.cancel_requested_at: now}).where(Subscription.id == subscription["id"])
        company = await Company.select(Company.name).where(Company.id == subscription["company"]).first()
        name = company["name"] if company else "A customer"
        await queue_kind(
            "subscription_cancellation",
            subscription["company"],
            await outbox.managers_of(subscription["partner"]),
            {
                "company_id": subscription["company"],
                "company_name": name,
                "requested_by": actor.name,
                "term_end": subscription["term_end"],
            },
            now,
            dedupe=f"subscription_cancellation:{subscription['id']}:{now.isoformat()}",
        )
        await audit.record(
            actor,
            "subscription.request_cancellation",
            subscription["company"],
            now,
            {"subscription": subscription["id"]},
        )
    return {**subscription, "cancel_requested_at": now}


async def confirm_cancellation(actor: Actor, subscription_id: int, now: datetime) -> dict[str, Any]:
    """Partner staff cancel a subscription (asked for in the portal or by e-mail):
    nothing renews; the term runs to its end."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await locks.lock_subscription(actor, subscription_id)
        require_partner_manager(actor)
        require(actor, Capability.INVOICES)
        _check_live(subscription, now)
        if not subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is already cancelled."})
        cancelled = await _set_cancelled(actor, subscription, "subscription.confirm_cancellation", now)
        await queue_kind(
            "subscription_cancelled",
            subscription["company"],
            await outbox.managers_of(subscription["company"]),
            {"term_end": subscription["term_end"]},
            now,
            dedupe=f"subscription_cancelled:{subscription['id']}:{now.isoformat()}",
        )
    return cancelled
