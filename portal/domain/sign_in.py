"""Signing in and asking for a new password, under attack.

Decisions (sign-in under attack):

- Every attempt is counted BEFORE its password is checked, in one atomic step of
  an `AttemptCounter` (a Redis script, or one process's memory when there is no
  Redis), so however many guesses arrive at once, at most
  SIGN_IN_ATTEMPTS passwords are checked per account per SIGN_IN_WINDOW.
- Throttling, not locking: the window is short (a minute), so whoever hammers an
  account keeps it closed only while they keep hammering, and the owner is never
  shut out for a quarter of an hour by five requests. "Forgot password?" is
  always open, and setting a password clears the account's count.
- The account is the address as typed (normalised), whether or not anyone has
  it: an unknown address, a learner's and a manager's are counted, refused and
  answered alike, and every refusal that reaches the password check costs the
  same argon2 work (against a dummy hash when there is no manager's hash). A
  throttled answer costs no argon2 for anyone, so it too says nothing about
  whether the address exists.
- A successful sign-in clears the account's count, so a manager who signs in
  often is never slowed down by their own successes.
- A window opens at an account's first attempt and closes SIGN_IN_WINDOW
  later; the next attempt opens a new one (on Redis, by the key's expiry).
- The second factor is counted the same way, per user, in a window of its own
  (SECOND_FACTOR_ATTEMPTS per SECOND_FACTOR_WINDOW): wrong codes close the code
  step, not the password. With valid_window=1 three codes of a million are right
  at a time, so five guesses a quarter of an hour leave a guesser nowhere.
- The sign-in is complete only after the second factor (`signed_in`): only then
  are the set-password links sent before voided.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from portal import db
from portal.domain import partner_settings, passwords
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import SignInRefused
from portal.domain.sso import settings as sso_settings
from portal.domain.two_factor import factors, recovery_codes, totp
from portal.domain.users import SIGN_IN_COLUMNS, holds_read_only_credit, normalise_email, token_hash
from portal.tables import MANAGER_ROLES, PasswordToken, Role, User

SIGN_IN_ATTEMPTS = 5
SIGN_IN_WINDOW = timedelta(minutes=1)
RESET_REQUESTS = 3
RESET_WINDOW = timedelta(hours=1)
RESET_VALID_FOR = timedelta(hours=1)
SECOND_FACTOR_ATTEMPTS = 5
SECOND_FACTOR_WINDOW = timedelta(minutes=15)

WRONG_CREDENTIALS = "That e-mail and password do not match a portal manager."
# E-mails carrying a set-password link are queued without a company, so the
# E-mails page (every e-mail about the companies under a partner's wing) never
# shows the link to another manager, who could otherwise take the account.
SECRET_MAIL_COMPANY = None

TOO_MANY_SIGN_INS = (
    "Too many sign-in attempts for this e-mail address. Wait a minute and try again, "
    "or choose “Forgot password?” to set a new password."
)
TOO_MANY_RESETS = (
    "Several links were already requested for this e-mail address. "
    "Use the latest one in your mailbox, or try again in an hour."
)


WRONG_CODE = "That code is not right, or it was used already. Type the 6 digits your app shows now, or a recovery code."
TOO_MANY_CODES = (
    "Too many wrong codes: signing in with a code is closed for a while. Try again in 15 minutes, "
    "or ask a partner manager to reset your second factor if you lost it."
)


READ_ONLY_ENDED = (
    "Your read-only access has ended: your company holds fewer read-only user credits now. "
    "Ask one of its managers to add them under Billing."
)


class Throttled(SignInRefused):
    """Refused before any password was checked: too many attempts in the window."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Hit(NamedTuple):
    attempts: int  # in the current window, this one included
    retry_after: int  # seconds until the window closes


class AttemptCounter(Protocol):
    """Counts attempts per key in windows that open at the first attempt; `hit`
    must add and read in one atomic step, or concurrent guesses would all read
    the count before any of them adds to it."""

    async def hit(self, key: str, window: timedelta, now: datetime) -> Hit: ...

    async def forget(self, key: str) -> None: ...


def account_key(email: str) -> str:
    """The counter key of an address as typed: normalised when it is an address,
    hashed so the counter's store holds no addresses."""
    try:
        email = normalise_email(email)
    except ValueError:
        email = email.strip().lower()
    return hashlib.sha256(email.encode()).hexdigest()


async def authenticate(email: str, password: str, now: datetime, attempts: AttemptCounter) -> dict[str, Any]:
    """The active manager behind these credentials, or SignInRefused (Throttled
    when the account's attempts are used up for this window)."""
    key = f"sign-in:{account_key(email)}"
    hit = await attempts.hit(key, SIGN_IN_WINDOW, now)
    if hit.attempts > SIGN_IN_ATTEMPTS:
        raise Throttled(TOO_MANY_SIGN_INS, hit.retry_after)
    user = None
    try:
        email = normalise_email(email)
    except ValueError:
        pass
    else:
        user = await User.select(*SIGN_IN_COLUMNS, User.password_hash).where(User.email == email).first()
    # Only a manager's hash is ever checked; everyone else costs the same work
    # against the dummy hash, and gets the same answer.
    manager_hash = user["password_hash"] if user and user["role"] in MANAGER_ROLES else None
    if not await passwords.verify_off_loop(manager_hash, password):
        raise SignInRefused(WRONG_CREDENTIALS)
    assert user is not None
    if not user["active"]:
        # Only whoever knows the password learns this.
        raise SignInRefused("This account has been deactivated.")
    if user["role"] == Role.READ_ONLY and not await holds_read_only_credit(user["id"], user["company"]):
        raise SignInRefused(READ_ONLY_ENDED)
    if refusal := await sso_settings.staff_refusal(user["company_path"], user["company_kind"]):
        raise SignInRefused(refusal)
    await attempts.forget(key)
    return user


async def passkey_user(user_id: int) -> dict[str, Any]:
    """The manager a passkey signed in (without a password), as `authenticate`
    returns one; SignInRefused when they can no longer sign in."""
    user = await User.select(*SIGN_IN_COLUMNS).where(User.id == user_id).first()
    if user is None or user["role"] not in MANAGER_ROLES or not user["active"]:
        raise SignInRefused("This account cannot sign in.")
    if user["role"] == Role.READ_ONLY and not await holds_read_only_credit(user["id"], user["company"]):
        raise SignInRefused(READ_ONLY_ENDED)
    if refusal := await sso_settings.staff_refusal(user["company_path"], user["company_kind"]):
        raise SignInRefused(refusal)
    return user


async def next_step(user: dict[str, Any]) -> str:
    """After the password: "done", "code" (the user has a second factor) or
    "enrol" (the user must have one and has none yet)."""
    if await factors.has_any(user["id"]):
        return "code"
    if await partner_settings.two_factor_required(user["company_path"], user["company_kind"]):
        return "enrol"
    return "done"


async def count_password_check(email: str, now: datetime, attempts: AttemptCounter) -> None:
    """A password checked outside the sign-in form (Profile's "Change password")
    counts against the same account limit, so a borrowed session cannot guess
    the password there faster than at the sign-in page."""
    hit = await attempts.hit(f"sign-in:{account_key(email)}", SIGN_IN_WINDOW, now)
    if hit.attempts > SIGN_IN_ATTEMPTS:
        raise Throttled(TOO_MANY_SIGN_INS, hit.retry_after)


async def check_second_factor(user_id: int, code: str, now: datetime, attempts: AttemptCounter) -> str:
    """After the password: a code of the user's authenticator app or one of their
    recovery codes, each accepted once. Returns how the user proved it
    ("authenticator" or "recovery_code"); SignInRefused (Throttled when the
    step's attempts are used up) otherwise."""
    key = f"second-factor:{user_id}"
    hit = await attempts.hit(key, SECOND_FACTOR_WINDOW, now)
    if hit.attempts > SECOND_FACTOR_ATTEMPTS:
        raise Throttled(TOO_MANY_CODES, hit.retry_after)
    if await totp.use_code(user_id, code, now):
        method = "authenticator"
    elif await recovery_codes.use(user_id, code, now):
        method = "recovery_code"
    else:
        raise SignInRefused(WRONG_CODE)
    await attempts.forget(key)
    return method


async def signed_in(user_id: int, now: datetime) -> None:
    """The sign-in is complete. A set-password link sent before is no longer
    wanted, and whoever else reads that mailbox must not use it."""
    await PasswordToken.update({PasswordToken.used_at: now}).where(
        (PasswordToken.user == user_id) & PasswordToken.used_at.is_null()
    )


async def request_password_reset(email: str, now: datetime, attempts: AttemptCounter) -> bool:
    """ "Forgot password?": e-mail an active manager a one-time set-password link.
    Whoever asks learns nothing about the address: the caller shows the same
    answer whether a link went out or not (the return value is for tests and
    logs). Throttled per address asked about, so nobody can flood a mailbox."""
    hit = await attempts.hit(f"reset:{account_key(email)}", RESET_WINDOW, now)
    if hit.attempts > RESET_REQUESTS:
        raise Throttled(TOO_MANY_RESETS, hit.retry_after)
    try:
        email = normalise_email(email)
    except ValueError:
        return False
    token = secrets.token_urlsafe(32)
    async with db.write_transaction():
        user = (
            await User.select(
                User.id,
                User.company,
                User.name,
                User.company.kind.as_alias("company_kind"),
                User.company.path.as_alias("company_path"),
            )
            .where((User.email == email) & User.role.is_in(list(MANAGER_ROLES)) & (User.active == True))  # noqa: E712
            .first()
        )
        if user is None:
            return False
        # Staff who may sign in only through their partner's provider have no password to set.
        if await sso_settings.staff_sso_only(user["company_path"], user["company_kind"]):
            return False
        await PasswordToken.insert(
            PasswordToken(user=user["id"], token_hash=token_hash(token), expires_at=now + RESET_VALID_FOR)
        )
        await queue_kind(
            "password_reset",
            SECRET_MAIL_COMPANY,
            [email],
            {
                "name": user["name"],
                "email": email,
                "hours": int(RESET_VALID_FOR.total_seconds() // 3600),
                "set_password_path": f"/set-password/{token}",
            },
            now,
            dedupe=f"password_reset:{token_hash(token)}",
        )
    return True


async def clear_sign_in_attempts(email: str, attempts: AttemptCounter) -> None:
    """After the owner proved their mailbox by setting a password: let them in at once."""
    await attempts.forget(f"sign-in:{account_key(email)}")
