"""One log line per request, with a request id the user can quote.

The id is taken from an incoming `X-Request-ID` when it looks like one (a
proxy or load balancer that already tagged the request), otherwise made here.
It is put in `scope["state"]["request_id"]` before the app runs (the 500 page
shows it: `request.state.request_id`) and returned in the `X-Request-ID`
header. Who asked (user, company) is read after the app ran, from the actor the
session dependency left in the state, or from the session itself."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("portal.web.request")

HEADER = "X-Request-ID"
# Letters, digits and a few separators, as UUIDs and most proxies' ids are:
# anything else (spaces, quotes, control characters, 200 bytes) is replaced,
# so a client cannot write what it likes into the log or the error page.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_ID.fullmatch(text):
                return text
            break
    return new_request_id()


def _who(scope: Scope) -> dict[str, Any]:
    actor = scope.get("state", {}).get("actor")
    if actor is not None:
        who = {"user_id": actor.user_id, "company_id": actor.company_id}
        if actor.managing_id:
            who["managing_id"] = actor.managing_id
        return who
    session = scope.get("session")
    if isinstance(session, dict) and session.get("user_id"):
        return {"user_id": session["user_id"]}
    return {}


# In the request's state when an error passed this middleware before any answer:
# what log_unrouted needs to write the line when the app's error handler answers.
_UNANSWERED = "request_log_unanswered"


def _write(scope: Scope, fields: dict[str, Any], status: int) -> None:
    fields = {**fields, "status": status, **_who(scope)}
    log.log(logging.ERROR if status >= 500 else logging.INFO, "request", extra=fields)


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        # Mounted apps (static files) rewrite scope["path"]: keep what was asked.
        method, path = scope.get("method"), scope["path"]
        status = 0  # no answer yet
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)[HEADER] = request_id
            await send(message)

        def fields() -> dict[str, Any]:
            return {
                "request_id": request_id,
                "method": method,
                "path": path,
                "route": scope.get("path_template") or None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                # The peer, or the client a trusted proxy named (FORWARDED_ALLOW_IPS).
                "client": (scope.get("client") or (None,))[0],
            }

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status:
                _write(scope, fields(), status)
            else:
                # Raised before any answer, outside the route's error handling (the
                # CSRF check reading a body over the size limit: 413): the app's
                # error handler answers after this returns. log_unrouted writes the
                # line then, with the status the client gets, not a guessed 500.
                state[_UNANSWERED] = (fields(), started)
            raise
        except BaseException:
            _write(scope, fields(), status or 500)  # cancelled: no one answers but the server
            raise
        else:
            _write(scope, fields(), status or 500)


async def log_unrouted(message: Message, scope: Scope) -> None:
    """`before_send` hook for what the middleware never sees: Litestar runs
    middleware per route, so an address with no route (404) or a method a
    route lacks (405) is answered by the router alone. Those get their id and
    log line here (without a duration: the hook sees only the answer). So does
    an error raised before any answer that the app's handler answers after the
    middleware has returned (see RequestLogMiddleware)."""
    if message["type"] != "http.response.start" or scope.get("type") != "http":
        return
    state = scope.setdefault("state", {})
    unanswered = state.pop(_UNANSWERED, None)
    if unanswered is not None:
        fields, started = unanswered
        MutableScopeHeaders.from_message(message)[HEADER] = state["request_id"]
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        _write(scope, fields, message["status"])
        return
    if "request_id" in state:
        return  # the middleware tagged it and logs it
    request_id = state["request_id"] = request_id_from(scope)
    MutableScopeHeaders.from_message(message)[HEADER] = request_id
    status = message["status"]
    log.log(
        logging.ERROR if status >= 500 else logging.INFO,
        "request",
        extra={
            "request_id": request_id,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "route": None,
            "status": status,
            "client": (scope.get("client") or (None,))[0],
        },
    )


def request_log_middleware(app: ASGIApp) -> ASGIApp:
    return RequestLogMiddleware(app)


REQUEST_LOG = DefineMiddleware(request_log_middleware)
