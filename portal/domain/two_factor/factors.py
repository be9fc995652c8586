"""What second factors a manager has; enrolling and removing them, which ends
the manager's other sessions; and a partner manager's reset for a manager who
lost theirs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal import db
from portal.domain import audit, sessions
from portal.domain.access import Actor, Capability, get_company, get_user, require, require_partner_manager
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.staff import is_staff
from portal.domain.two_factor import recovery_codes, totp
from portal.tables import MANAGER_ROLES
from portal.tables.sign_in import Passkey, RecoveryCode, TotpFactor

WRONG_ENROLMENT_CODE = (
    "That code does not match. Check that the app shows the License Portal entry you just added, "
    "and type the 6 digits it shows now."
)


@dataclass(frozen=True)
class Factors:
    authenticator: bool
    passkeys: list[dict[str, Any]]
    recovery_codes_left: int

    @property
    def any(self) -> bool:
        return self.authenticator or bool(self.passkeys)


async def of_user(user_id: int) -> Factors:
    keys = (
        await Passkey.select(Passkey.id, Passkey.name, Passkey.created_at, Passkey.last_used_at)
        .where(Passkey.user == user_id)
        .order_by(Passkey.id)
    )
    return Factors(
        authenticator=await TotpFactor.exists().where(TotpFactor.user == user_id),
        passkeys=keys,
        recovery_codes_left=await recovery_codes.remaining(user_id),
    )


async def has_any(user_id: int) -> bool:
    return await TotpFactor.exists().where(TotpFactor.user == user_id) or await Passkey.exists().where(
        Passkey.user == user_id
    )


async def has_passkeys(user_id: int) -> bool:
    return await Passkey.exists().where(Passkey.user == user_id)


@dataclass(frozen=True)
class Enrolled:
    recovery_codes: list[str]  # shown once; empty when the user keeps the codes they had
    session_generation: int  # the number the session that enrolled carries on with


async def enrol_authenticator(
    user_id: int, company_id: int, secret: str, code: str, now: datetime, keep_session: int | None
) -> Enrolled:
    """Keep the app whose secret the user scanned, once a code of it proves the
    scan worked; every other session of the user ends. A user who had no second
    factor gets ten recovery codes (and so does one who used all theirs)."""
    step = totp.matching_step(secret, code, now)
    if step is None:
        raise ValidationFailed({"code": WRONG_ENROLMENT_CODE})
    async with db.write_transaction():
        had_factor = await has_any(user_id)
        await TotpFactor.insert(TotpFactor(user=user_id, secret=secret, last_step=step, created_at=now)).on_conflict(
            target=TotpFactor.user,
            action="DO UPDATE",
            values=[TotpFactor.secret, TotpFactor.last_step, TotpFactor.created_at],
        )
        codes = []
        if not had_factor or not await recovery_codes.remaining(user_id):
            codes = await recovery_codes.replace(user_id)
        generation = await sessions.end_others(user_id, keep_session, now)
        await audit.record(None, "two_factor.enrol_authenticator", company_id, now, actor_id=user_id)
    return Enrolled(codes, generation)


async def new_recovery_codes(actor: Actor, now: datetime) -> list[str]:
    """Ten new codes for a user with a second factor; the old ones stop working."""
    if not await has_any(actor.user_id):
        raise ValidationFailed({"recovery": "Set up an authenticator app or a passkey first."})
    async with db.write_transaction():
        codes = await recovery_codes.replace(actor.user_id)
        await audit.record(actor, "two_factor.new_recovery_codes", actor.company_id, now)
    return codes


async def remove_authenticator(actor: Actor, required: bool, now: datetime, keep_session: int | None) -> int:
    """Remove the user's authenticator app; refused when a second factor is
    required of them and this is their only one. Ends every other session; returns
    the new session generation."""
    factors = await of_user(actor.user_id)
    if not factors.authenticator:
        raise ValidationFailed({"authenticator": "You have no authenticator app set up."})
    if required and not factors.passkeys:
        raise ValidationFailed(
            {"authenticator": "Your partner requires a second factor: add a passkey before you remove the app."}
        )
    async with db.write_transaction():
        await TotpFactor.delete().where(TotpFactor.user == actor.user_id)
        if not factors.passkeys:
            await RecoveryCode.delete().where(RecoveryCode.user == actor.user_id)
        generation = await sessions.end_others(actor.user_id, keep_session, now)
        await audit.record(actor, "two_factor.remove_authenticator", actor.company_id, now)
    return generation


async def reset(actor: Actor, user_id: int, now: datetime) -> dict[str, Any]:
    """A partner manager removes the second factors of a manager under their wing
    who lost them: every session of that manager ends, they sign in with their
    password (and enrol again where a second factor is required), and they are
    e-mailed, so a reset they did not ask for does not go unnoticed."""
    require_partner_manager(actor)
    user = await get_user(actor, user_id)
    company = await get_company(actor, user["company"])
    require(actor, Capability.STAFF if is_staff(company) else Capability.CUSTOMERS)
    if user["role"] not in MANAGER_ROLES:
        raise ValidationFailed({"user": "Learners do not sign in to the portal."})
    if user["id"] == actor.user_id:
        raise PermissionDenied("Use one of your recovery codes, or ask another partner manager to reset yours.")
    async with db.write_transaction():
        await TotpFactor.delete().where(TotpFactor.user == user["id"])
        await Passkey.delete().where(Passkey.user == user["id"])
        await RecoveryCode.delete().where(RecoveryCode.user == user["id"])
        await sessions.end_others(user["id"], None, now)
        await audit.record(actor, "user.reset_second_factor", user["company"], now, {"email": user["email"]})
        await queue_kind(
            "second_factor_reset",
            user["company"],
            [user["email"]],
            {"name": user["name"], "email": user["email"], "by": actor.name, "by_company": actor.company_name},
            now,
            f"second_factor_reset:{user['id']}:{now.isoformat()}",
        )
    return user
