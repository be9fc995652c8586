"""The sessions a manager has open: one row per signed-in browser, which the
session in the store names. A session counts while its row is not ended, it
was seen within the idle lifetime, and it signed in within the absolute one.

Ending sessions is a write here, never a search through the session store: the
next request of an ended session finds its row ended and is signed out
(portal/web/session.py drops it from the store then)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from portal.tables import User
from portal.tables.sign_in import UserSession

# last_seen_at is written at most this often per session: a write per page would
# cost a round trip for a figure shown to the minute.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta  # signed out after this long without a request
    absolute: timedelta  # signed out this long after signing in, however busy


def still_open(row: dict[str, Any], now: datetime, lifetimes: Lifetimes) -> bool:
    return (
        row["ended_at"] is None
        and row["last_seen_at"] + lifetimes.idle > now
        and row["signed_in_at"] + lifetimes.absolute > now
    )


async def open_session(user_id: int, browser: str, address: str, method: str, now: datetime) -> int:
    row = UserSession(
        user=user_id, browser=browser[:200], address=address[:64], method=method, signed_in_at=now, last_seen_at=now
    )
    return cast("int", (await UserSession.insert(row).returning(UserSession.id))[0]["id"])


async def touch(session_id: int, last_seen_at: datetime, now: datetime) -> None:
    if now - last_seen_at >= TOUCH_EVERY:
        await UserSession.update({UserSession.last_seen_at: now}).where(UserSession.id == session_id)


async def list_open(user_id: int, now: datetime, lifetimes: Lifetimes) -> list[dict[str, Any]]:
    """The user's sessions that still count, the one seen last first."""
    rows = (
        await UserSession.select(
            UserSession.id,
            UserSession.browser,
            UserSession.address,
            UserSession.method,
            UserSession.signed_in_at,
            UserSession.last_seen_at,
            UserSession.ended_at,
        )
        .where((UserSession.user == user_id) & UserSession.ended_at.is_null())
        .order_by(UserSession.last_seen_at, ascending=False)
        .order_by(UserSession.id, ascending=False)
    )
    return [row for row in rows if still_open(row, now, lifetimes)]


async def end(user_id: int, session_id: int, now: datetime) -> bool:
    """ "Sign out" of one of the user's own sessions; another user's id ends nothing."""
    ended = (
        await UserSession.update({UserSession.ended_at: now})
        .where((UserSession.id == session_id) & (UserSession.user == user_id) & UserSession.ended_at.is_null())
        .returning(UserSession.id)
    )
    return bool(ended)


async def end_others(user_id: int, keep: int | None, now: datetime) -> int:
    """End every session of the user but `keep` (None: every one). Also raises the
    user's session generation, which ends sessions that have no row (signed in
    before sessions were listed); returns the new number, for the kept session
    to carry. Call inside the transaction of the change that causes it."""
    others = (UserSession.user == user_id) & UserSession.ended_at.is_null()
    if keep is not None:
        others &= UserSession.id != keep
    await UserSession.update({UserSession.ended_at: now}).where(others)
    raised = (
        await User.update({User.session_generation: User.session_generation + 1})
        .where(User.id == user_id)
        .returning(User.session_generation)
    )
    return cast("int", raised[0]["session_generation"])
