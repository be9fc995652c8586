"""Headers every response carries: a Content-Security-Policy that forbids inline
script, framing and sniffing rules, no caching of what a signed-in page shows,
and `Vary` on the htmx headers that pick a page or its fragment.

A pure ASGI middleware: it wraps `send` and touches nothing but the headers of
`http.response.start`, so pages, fragments, redirects, error pages and static
files all pass through the same place. `add_headers(message, scope)` is the same
work in the shape of Litestar's `before_send` hook, for answers that no route's
middleware sees (an address that matches no route)."""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style anywhere: user text that slips into a page cannot run.
# htmx is configured (layout.html) not to inject its inline indicator style nor eval.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The API reference (/schema/swagger …) is Litestar's page: an inline script that
# loads Swagger UI from a CDN. It shows no user data, so it gets that much more,
# and nothing else does.
SCHEMA_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https:; style-src 'self' 'unsafe-inline' https:; "
    "img-src 'self' data: https:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# render() picks the fragment by HX-Target and the full page on a history restore.
VARY = ("HX-Request", "HX-Target", "HX-History-Restore-Request")

_FIXED = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def _policy(path: str) -> bytes:
    return (SCHEMA_POLICY if path == "/schema" or path.startswith("/schema/") else POLICY).encode()


async def add_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    path = scope.get("path", "")
    headers = list(message.get("headers") or [])
    present = {name.lower() for name, _ in headers}
    for name, value in ((b"content-security-policy", _policy(path)), *_FIXED):
        if name not in present:
            headers.append((name, value))
    # Static files are the same for everyone; everything else may show what only
    # the signed-in user should see (or a CSRF token): never stored by a cache.
    if not path.startswith("/static/") and b"cache-control" not in present:
        headers.append((b"cache-control", b"no-store"))
    vary = [v.strip() for name, value in headers if name.lower() == b"vary" for v in value.decode().split(",")]
    vary += [v for v in VARY if v.lower() not in {x.lower() for x in vary}]
    headers = [(name, value) for name, value in headers if name.lower() != b"vary"]
    headers.append((b"vary", ", ".join(v for v in vary if v).encode()))
    message["headers"] = headers


class SecurityHeaders:
    """ASGI middleware: `middleware=[SecurityHeaders, …]` in the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            await add_headers(message, scope)
            await send(message)

        await self.app(scope, receive, send_with_headers)
