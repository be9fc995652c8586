"""Server-side sessions, rotated on sign-in, and the signed-in actor.

A session is signed in only when it holds `user_id`, which is set when the
whole sign-in is done (password, then the second factor where the user has or
needs one). Between the two steps it holds only PENDING: no route that takes the
actor can see a user there, and the sign-in-needed answer sends such a session
to the step it is at (the code, or enrolment) instead of the sign-in page."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession

from portal.domain import sessions
from portal.domain.access import Actor, SessionCheck, load_actor, require
from portal.domain.branding.brand import for_path as brand_for_path
from portal.domain.clock import utcnow
from portal.domain.errors import PermissionDenied
from portal.domain.users import holds_read_only_credit
from portal.web.roles import capability_for

_NEW_ID = "portal.new_session_id"
_OLD_ID = "portal.old_session_id"
_LOADED = "portal.session_as_loaded"
GENERATION = "generation"  # the user's session_generation when this session signed in
SESSION_ROW = "sid"  # the user_session row of this browser (portal/domain/sessions.py)
PENDING = "second_factor"  # password passed, second factor not yet
PENDING_FOR = 600  # seconds to type the code or finish enrolling before starting over
CODE_PAGE = "/login/code"
ENROL_PAGE = "/two-factor/authenticator"
RENEW_EVERY = 3600  # seconds
READING = frozenset({"GET", "HEAD"})


class RotatingSessionBackend(ServerSideSessionBackend):
    """Issues a fresh session id when asked (sign-in), so an id planted or seen
    before sign-in is worthless after it.

    Writes a session back only when it changed, or once an hour ("renewed") so
    that it still expires about SESSION_DAYS after the last visit (at most an
    hour sooner), not after the first: a write on every response is a store
    round trip per page."""

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        connection.scope[_LOADED] = dict(data)  # type: ignore[literal-required]
        return data

    def get_session_id(self, connection: ASGIConnection) -> str:
        return connection.scope.get(_NEW_ID) or super().get_session_id(connection)  # type: ignore[return-value]

    async def store_in_message(self, scope_session: ScopeSession, message: Message, connection: ASGIConnection) -> None:
        if old := cast(str | None, connection.scope.get(_OLD_ID)):
            await self.delete(old, store=self.config.get_store_from_app(connection.scope["app"]))
        if scope_session is not Empty:
            scope_session = cast(dict[str, Any], scope_session)  # the portal's sessions are dicts
            now = int(time.time())
            unchanged = scope_session == connection.scope.get(_LOADED) and not connection.scope.get(_NEW_ID)
            # An empty session stays unwritten: a visitor who is not signed in leaves nothing in the store.
            if unchanged and (not scope_session or now - scope_session.get("renewed", 0) < RENEW_EVERY):
                return
            if scope_session:
                scope_session["renewed"] = now
        await super().store_in_message(scope_session, message, connection)


class SessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend


def rotate_session(connection: ASGIConnection) -> None:
    connection.scope[_OLD_ID] = connection.cookies.get("session")  # type: ignore[literal-required]
    connection.scope[_NEW_ID] = secrets.token_hex(32)  # type: ignore[literal-required]


def start_pending(connection: ASGIConnection, user: dict, enrol: bool, next_path: str | None) -> None:
    """The password was right: a fresh session that knows whose it is going to be."""
    rotate_session(connection)
    connection.set_session(
        {
            PENDING: {
                "user_id": user["id"],
                "company_id": user["company"],
                "email": user["email"],
                "is_partner_manager": user["company_kind"] != "customer",
                "generation": user["session_generation"],
                "enrol": enrol,
                "next": next_path,
                "until": int(time.time()) + PENDING_FOR,
            }
        }
    )


def pending(connection: ASGIConnection) -> dict | None:
    """The sign-in waiting for its second factor, while it has not run out."""
    stored = connection.scope.get("session")
    waiting = stored.get(PENDING) if isinstance(stored, dict) else None
    if not waiting or waiting.get("until", 0) < time.time():
        return None
    return waiting


def pending_page(connection: ASGIConnection) -> str | None:
    """Where a session between the password and the second factor belongs."""
    waiting = pending(connection)
    if waiting is None:
        return None
    return ENROL_PAGE if waiting["enrol"] else CODE_PAGE


def lifetimes(connection: ASGIConnection) -> sessions.Lifetimes:
    settings = connection.app.state.settings
    return sessions.Lifetimes(
        idle=timedelta(minutes=settings.session_idle_minutes), absolute=timedelta(hours=settings.session_max_hours)
    )


async def _signed_in_actor(request: Request) -> Actor:
    user_id = request.session.get("user_id")
    row = request.session.get(SESSION_ROW)
    check = SessionCheck(row, utcnow(), lifetimes(request)) if row else None
    # A session from before sessions were counted holds no number: the user's first, 0.
    actor = (
        await load_actor(user_id, request.session.get("managing_id"), request.session.get(GENERATION, 0), check)
        if user_id
        else None
    )
    if user_id and actor is None:
        # Ended for good (a new password, a deactivated user): drop it from the
        # store rather than keep answering for it.
        request.clear_session()
    if actor is None or (actor.read_only and not await holds_read_only_credit(actor.user_id, actor.company_id)):
        raise NotAuthorizedException("Please sign in.")
    request.state.actor = actor
    if actor.company_kind == "customer":
        # Its partner's logo and color, in the header of every page it sees.
        request.state.brand = await brand_for_path(actor.company_path)
    return actor


async def provide_account_holder(request: Request) -> Actor:
    """For the signed-in user's own account (password, second factor, sessions):
    a read-only manager may change those too."""
    return await _signed_in_actor(request)


async def provide_actor(request: Request) -> Actor:
    """Dependency for every signed-in route; unknown or disabled users are sent to sign in."""
    actor = await _signed_in_actor(request)
    # The one place a read-only manager's changes are refused: every route that
    # changes anything takes the actor, and only reading is GET (signing out
    # needs no actor).
    if actor.read_only and request.method not in READING:
        raise PermissionDenied(
            f"You have read-only access to {actor.company_name}: ask one of its managers to make changes."
        )
    # A customer's read-only manager reads every page of its company, the forms of a
    # change left out (a note says why; the change itself is refused above). Staff
    # roles are narrower: a page that starts a change is for the role that makes it.
    reader = actor.read_only and not actor.is_partner_manager and request.method in READING
    capability = capability_for(request.method, request.scope.get("path_template") or request.url.path)
    if capability and not reader:
        require(actor, capability)
    return actor


CurrentActor = NamedDependency[Actor]


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_browser(user_agent: str) -> str:
    """ "Chrome on Windows", for the list of sessions; the browser's own words when unknown."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent[:60] or "Unknown browser")
