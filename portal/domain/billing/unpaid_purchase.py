"""A purchase that is never paid ends whole, whichever step ends it (the customer
cancelling the pending subscription, partner staff voiding its invoice): the purchase
invoice void, its order taken off Requested Orders (so Assign cannot give its seats
for nothing), the pending subscription ended (so the company may buy again).
Inside the caller's transaction, which holds the subscription's and invoice's locks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain import audit
from portal.domain.access import Actor
from portal.tables import LicenceOrder, OrderStatus
from portal.tables.billing import Subscription, SubscriptionStatus

VOIDED_ON_CANCEL = "The subscription was cancelled before it was paid."


async def withdraw_order(
    order_id: int | None, status: OrderStatus, actor: Actor | None, now: datetime, reason: str | None = None
) -> bool:
    """The purchase's order, if still `requested`, becomes `status` ("cancelled": the
    customer withdrew it; "declined": its invoice was voided, `reason` said to them)."""
    if order_id is None:
        return False
    changes: dict[Any, Any] = {
        LicenceOrder.status: status,
        LicenceOrder.decided_by: actor.user_id if actor else None,
        LicenceOrder.decided_at: now,
    }
    if reason is not None:
        changes[LicenceOrder.decline_reason] = reason[:500]
    done = (
        await LicenceOrder.update(changes)
        .where((LicenceOrder.id == order_id) & (LicenceOrder.status == OrderStatus.REQUESTED))
        .returning(LicenceOrder.id, LicenceOrder.company)
    )
    if done:
        action = "order.decline" if status == OrderStatus.DECLINED else "order.cancel"
        await audit.record(actor, action, done[0]["company"], now, {"order": order_id, "reason": reason})
    return bool(done)


async def end_pending(subscription_id: int | None, actor: Actor | None, reason: str, now: datetime) -> bool:
    """A subscription still waiting for its first payment ends now; nothing renews."""
    if subscription_id is None:
        return False
    done = (
        await Subscription.update(
            {
                Subscription.status: SubscriptionStatus.ENDED,
                Subscription.auto_renew: False,
                Subscription.cancelled_at: now,
            }
        )
        .where((Subscription.id == subscription_id) & (Subscription.status == SubscriptionStatus.PENDING))
        .returning(Subscription.id, Subscription.company)
    )
    if done:
        detail = {"subscription": subscription_id, "reason": reason}
        await audit.record(actor, "subscription.end_unpaid", done[0]["company"], now, detail)
    return bool(done)
