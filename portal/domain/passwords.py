"""Passwords: the rule a new one must meet, and argon2 hashing off the event loop.

argon2 costs tens of milliseconds of CPU by design. Run on the event loop it
stalls every other request of the process, so the async functions here run it
in worker threads, at most POOL_SIZE at once: sign-ins beyond that wait for a
thread, other pages do not wait at all (argon2-cffi releases the GIL)."""

from __future__ import annotations

import asyncio
import os
from functools import cache
from weakref import WeakKeyDictionary

import anyio.to_thread
from anyio import CapacityLimiter
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 10
MAX_LENGTH = 256
# Two hashes at a time per core keeps the cores busy without queuing sign-ins
# behind one another more than needed; each hash also takes 64 MiB while it runs.
POOL_SIZE = max(2, min(8, 2 * (os.cpu_count() or 1)))
# Verified against when there is no manager's hash to check (unknown address,
# learner, manager who has not set a password yet), so every refusal costs the
# same argon2 work and its timing tells nothing.
_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")

# One limiter per event loop: an anyio limiter belongs to the loop that made it.
_limiters: WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = WeakKeyDictionary()


def pool() -> CapacityLimiter:
    """The bounded pool of this event loop (tests read how many tokens are borrowed)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(POOL_SIZE)
    return limiter


def hash_password(password: str) -> str:
    """Blocking; for scripts and data loading. Request paths use `hash_off_loop`."""
    return _hasher.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_off_loop(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password, limiter=pool())


async def verify_off_loop(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash, the same work against a dummy and False."""
    return await anyio.to_thread.run_sync(_verify, password_hash, password, limiter=pool())


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn's list of the 30,000 most used passwords (from breaches), lower-cased;
    # imported when first needed, as the module holds several large word lists.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, confirm: str, email: str | None = None) -> str | None:
    """What is wrong with a new password, or None. A password may hold any
    characters (spaces too), but not only blanks, not a well-known one, and not
    the owner's e-mail address or the part before its @."""
    if not password.strip():
        return "Choose a password that is not only spaces."
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    folded = password.strip().lower()
    if email and folded in (email.lower(), email.lower().partition("@")[0]):
        return "Choose a password that is not your e-mail address."
    if folded in _common_passwords():
        return "This password is on a list of common passwords that attackers try first. Choose another."
    if password != confirm:
        return "The two passwords differ."
    return None
