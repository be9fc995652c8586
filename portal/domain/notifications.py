"""A manager's own choice about e-mails: reminders (72 hours before licences
end, and when they have ended) can be switched off; order and password e-mails
always go. The expiry sweep reads the same column (notifications_sweep.py).
A partner manager can also switch off the weekly digest (emails/digest.py reads it)."""

from __future__ import annotations

from datetime import datetime

from portal.domain import audit
from portal.domain.access import Actor
from portal.tables import User


async def reminders_on(actor: Actor) -> bool:
    row = await User.select(User.reminders_off).where(User.id == actor.user_id).first()
    return not (row and row["reminders_off"])


async def set_reminders(actor: Actor, on: bool, now: datetime) -> bool:
    """Returns whether anything changed (audited when it did)."""
    if await reminders_on(actor) == on:
        return False
    await User.update({User.reminders_off: not on}).where(User.id == actor.user_id)
    await audit.record(actor, "profile.reminders", actor.company_id, now, {"reminders": on})
    return True


async def digest_on(actor: Actor) -> bool:
    row = await User.select(User.digest_off).where(User.id == actor.user_id).first()
    return not (row and row["digest_off"])


async def set_digest(actor: Actor, on: bool, now: datetime) -> bool:
    """The weekly digest, a partner manager's to switch; returns whether anything
    changed (audited when it did)."""
    if not actor.is_partner_manager or await digest_on(actor) == on:
        return False
    await User.update({User.digest_off: not on}).where(User.id == actor.user_id)
    await audit.record(actor, "profile.digest", actor.company_id, now, {"digest": on})
    return True
