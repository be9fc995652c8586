"""Authenticator-app codes (RFC 6238, 30-second steps, 6 digits) with pyotp.

A code is accepted for the step before, the current one and the one after
(pyotp's valid_window=1: a phone clock a little off still works), and never
twice: the factor keeps the newest step a code was accepted for, and a code of
that step or an earlier one is refused. The update that records the step only
wins while the recorded step is older, so two requests racing with one code
cannot both pass."""

from __future__ import annotations

import hmac
import re
from datetime import datetime

import pyotp

from portal.tables.sign_in import TotpFactor

ISSUER = "License Portal"
VALID_WINDOW = 1
_CODE = re.compile(r"[0-9]{6}")


def new_secret() -> str:
    """160 random bits, base32, as authenticator apps take them."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it in by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", code)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step `code` belongs to, within the window around `now`; None if it
    matches none. The comparison is pyotp's verify (valid_window=1), step by step,
    so the caller learns which step to record."""
    code = normalise(code)
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def step_code(secret: str, step: int) -> str:
    """The code of one step (tests and the enrolment page's checks)."""
    return pyotp.TOTP(secret).generate_otp(step)


async def use_code(user_id: int, code: str, now: datetime) -> bool:
    """Whether `code` is a valid, not yet used code of the user's authenticator app;
    a valid one is used up."""
    factor = await TotpFactor.select(TotpFactor.secret).where(TotpFactor.user == user_id).first()
    if factor is None:
        return False
    step = matching_step(factor["secret"], code, now)
    if step is None:
        return False
    won = (
        await TotpFactor.update({TotpFactor.last_step: step})
        .where((TotpFactor.user == user_id) & (TotpFactor.last_step < step))
        .returning(TotpFactor.id)
    )
    return bool(won)
