"""Server-side sessions, rotated on sign-in, and the signed-in actor."""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession

from portal.domain.access import Actor, load_actor
from portal.domain.errors import PermissionDenied
from portal.domain.users import holds_read_only_credit

_NEW_ID = "portal.new_session_id"
_OLD_ID = "portal.old_session_id"
_LOADED = "portal.session_as_loaded"
GENERATION = "generation"  # the user's session_generation when this session signed in
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


async def provide_actor(request: Request) -> Actor:
    """Dependency for every signed-in route; unknown or disabled users are sent to sign in."""
    user_id = request.session.get("user_id")
    # A session from before sessions were counted holds no number: the user's first, 0.
    actor = (
        await load_actor(user_id, request.session.get("managing_id"), request.session.get(GENERATION, 0))
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
    # The one place a read-only manager's changes are refused: every route that
    # changes anything takes the actor, and only reading is GET (signing out
    # needs no actor).
    if actor.read_only and request.method not in READING:
        raise PermissionDenied(
            f"You have read-only access to {actor.company_name}: ask one of its managers to make changes."
        )
    return actor


CurrentActor = NamedDependency[Actor]
