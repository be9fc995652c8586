"""Helpers for tests of two-factor sign-in: an authenticator app enrolled
through the domain, and the codes it would show."""

from __future__ import annotations

from datetime import timedelta

import httpx

from portal.domain.clock import utcnow
from portal.domain.two_factor import factors, totp
from tests.support import PASSWORD, post_form

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


async def enrol(user: dict, secret: str = SECRET) -> list[str]:
    """Enrol `user`'s authenticator app as of two minutes ago, so that a code of
    now was not used by the enrolment. Returns the recovery codes."""
    then = utcnow() - timedelta(minutes=2)
    code = totp.step_code(secret, totp.pyotp.TOTP(secret).timecode(then))
    enrolled = await factors.enrol_authenticator(user["id"], user["company"], secret, code, then, None)
    return enrolled.recovery_codes


def code_now(secret: str = SECRET, steps_ahead: int = 0) -> str:
    """The code the app shows now (or `steps_ahead` steps later, within the window)."""
    return totp.step_code(secret, totp.pyotp.TOTP(secret).timecode(utcnow()) + steps_ahead)


async def password_step(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    response = await post_form(client, "/login", "/login", {"email": email, "password": password})
    assert response.status_code in (302, 303), response.text[:500]
    return response


async def send_code(client: httpx.AsyncClient, code: str) -> httpx.Response:
    return await post_form(client, "/login/code", "/login/code", {"code": code})
