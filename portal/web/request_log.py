"""One log line per request, with a request id the user can quote."""

from __future__ import annotations

from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send


def request_log_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return middleware


REQUEST_LOG = DefineMiddleware(request_log_middleware)
