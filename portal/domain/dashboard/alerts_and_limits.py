"""The Admin Dashboard's "Alerts and limits": the partner's free-seat alert and
largest order, saved for its own company and the companies under it (a
sub-partner's own settings win below it), and what saving changed, in words."""

from __future__ import annotations

from datetime import datetime

from portal.domain import partner_settings
from portal.domain.access import Actor


async def save_alerts_and_limits(actor: Actor, low_seat_threshold: str, max_order_quantity: str, now: datetime) -> str:
    """Saves both as typed for the actor's own company and says what changed;
    ValidationFailed names each field's problem at once."""
    before = await partner_settings.for_path(actor.company_path)
    saved = await partner_settings.save(
        actor,
        actor.company_id,
        max_order_quantity=max_order_quantity,
        low_seat_threshold=low_seat_threshold,
        now=now,
    )
    return said(actor.company_name, before, saved)


def said(company: str, before: partner_settings.PartnerSettings, after: partner_settings.PartnerSettings) -> str:
    """What saving changed: "Free-seat alert set to 5 for Acme MSP and the companies under it." """
    changes = []
    if after.low_seat_threshold != before.low_seat_threshold:
        changes.append(f"Free-seat alert set to {after.low_seat_threshold:,}")
    if after.max_order_quantity != before.max_order_quantity:
        changes.append(f"Largest order set to {after.max_order_quantity:,}")
    if not changes:
        return (
            f"Nothing changed: the free-seat alert stays at {after.low_seat_threshold:,} and the largest order at "
            f"{after.max_order_quantity:,} for {company} and the companies under it."
        )
    return f"{' and '.join(changes)} for {company} and the companies under it."
