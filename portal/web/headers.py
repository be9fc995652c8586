"""Headers every response carries: a Content-Security-Policy that forbids inline
script, framing and sniffing rules, no caching of what a signed-in page shows,
and `Vary` on the htmx headers that pick a page or its fragment.

Wired as Litestar's `before_send` hook: Litestar wraps the ASGI `send` of the
whole app with it, so it sees every `http.response.start`: pages, fragments,
redirects, static files, and also the answers a route middleware never sees
(an error raised by the CSRF or rate-limit middleware, an address no route
matches). It touches nothing but the headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.types import Message, Scope

from portal.services import CardEntry

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


def policy_for(card_entry: CardEntry) -> str:
    """POLICY and exactly what the card processor's browser side needs: nothing more for
    the test processor (its card page is the portal's own, framed from 'self'); for
    Stripe, Stripe.js, its API and its frames (or a stand-in's one address)."""
    if card_entry.kind != "stripe":
        return POLICY
    script = " ".join(("'self'", *card_entry.script_src))
    connect = " ".join(("'self'", *card_entry.connect_src))
    frame = " ".join(("'self'", *card_entry.frame_src))
    return POLICY.replace("script-src 'self';", f"script-src {script}; connect-src {connect}; frame-src {frame};")


def security_headers(policy: str = POLICY) -> Callable[[Message, Scope], Awaitable[None]]:
    """The before_send hook, with the page policy the app's card processor needs."""
    page_policy, schema_policy = policy.encode(), SCHEMA_POLICY.encode()

    async def add_headers(message: Message, scope: Scope) -> None:
        # async: Litestar runs a sync hook in a worker thread, a thread hop per message.
        if message["type"] != "http.response.start":
            return
        path = scope.get("path", "")
        schema = path == "/schema" or path.startswith("/schema/")
        _add(message, path, schema_policy if schema else page_policy)

    return add_headers


def _add(message: Any, path: str, policy: bytes) -> None:
    headers = list(message.get("headers") or [])
    present = {name.lower() for name, _ in headers}
    for name, value in ((b"content-security-policy", policy), *_FIXED):
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


add_headers = security_headers()
