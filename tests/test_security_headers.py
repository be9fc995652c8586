"""Every answer carries the security headers (a stored XSS once ran in a
partner's session), whatever answered it: a page, an htmx fragment, a redirect
to sign in, an error page, a static file. And no template can bring the hole
back: no inline event handler, inline script or inline style anywhere."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from litestar.routes import HTTPRoute

from portal.domain.access import load_actor
from portal.domain.billing import refunds, settlement
from portal.domain.billing.quotes import Purchase
from portal.domain.billing.subscriptions import buy
from portal.domain.bulk import runs as bulk_runs
from portal.domain.bulk.selection import Selection as BulkSelection
from portal.domain.clock import utcnow
from portal.domain.imports.preview import receive
from portal.domain.orders.decisions import assign_order
from portal.domain.orders.requests import request_order
from portal.domain.webhooks import endpoints as webhook_endpoints
from portal.tables import OutboxEmail
from portal.web.headers import POLICY, SCHEMA_POLICY
from portal.web.test_processor import FRAME_POLICY
from tests.factories import add_user
from tests.support import PROCESSOR, csrf_of, import_files_here, sign_in

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def get_routes(app) -> list[str]:
    return sorted({r.path for r in app.routes if isinstance(r, HTTPRoute) and "GET" in r.methods})


async def path_values(tree) -> dict[str, str]:
    """A value for every path parameter of the app, from the test tree: the
    customer under the partner, its learner, an order requested and one assigned, an e-mail, a CSV import,
    a subscription bought by invoice and its invoice, paid and part refunded (a credit note)."""
    learner = await add_user(tree.direct, "learner@direct.example", role="learner", name="Lee Learner")
    actor = await load_actor(tree.managers["direct"]["id"], None)
    order = await request_order(actor, tree.direct["id"], 5, None, "", utcnow())
    email = await OutboxEmail.select(OutboxEmail.id).first()  # the request's e-mail to the account managers
    partner = await load_actor(tree.managers["partner"]["id"], None)
    renewable = await request_order(actor, tree.direct["id"], 3, None, "", utcnow())
    batch = await assign_order(partner, renewable["id"], utcnow())
    imported = await receive(
        actor, tree.direct["id"], "users.csv", BytesIO(b"learner@direct.example\n"), utcnow(), import_files_here()
    )
    bought = await buy(actor, tree.direct["id"], Purchase("pro", 2, 1, (), "invoice"), utcnow(), processor=PROCESSOR)
    # Paid by check and part refunded: a credit note.
    await settlement.record_payment(partner, bought["invoice"]["id"], method="check", reference="", now=utcnow())
    refunded = await refunds.refund(
        partner, bought["invoice"]["id"], 100, "Goodwill", "k", utcnow(), processor=PROCESSOR
    )
    endpoint = await webhook_endpoints.create(
        partner, "https://psa.example.com/hooks", "", ["order.assigned"], utcnow(), allow_private=False
    )
    started = await bulk_runs.start_run(
        partner, BulkSelection("auto_renew", companies=(tree.direct["id"],)), "k", utcnow()
    )
    return {
        "run_id": str(started.run_id),
        "endpoint_id": str(endpoint["id"]),
        "company_id": str(tree.direct["id"]),
        "user_id": str(learner["id"]),
        "order_id": str(order["id"]),
        "email_id": str(email["id"]),
        "import_id": str(imported),
        "batch_id": str(batch["id"]),
        "subscription_id": str(bought["subscription"]["id"]),
        "invoice_id": str(bought["invoice"]["id"]),
        "credit_note_id": str(refunded["credit_note"]["id"]),
        "code": "pro",
        "name": "status",
        "token": "not-a-token",
        "email": learner["email"],
        "urn": "urn:ietf:params:scim:schemas:core:2.0:User",  # a SCIM schema
        "file_path": "portal.css",
        "path": "openapi.json",
        "kind": "order_declined",
        "digest": "0" * 64,
        "rrggbb": "1f6feb",
    }


def fill(route: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in values, f"{route}: add a value for path parameter {name!r} to path_values()"
        return values[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, route)


def assert_secured(response, what: str) -> None:
    headers = response.headers
    path = response.request.url.path
    schema = path == "/schema" or path.startswith("/schema/")
    policy = headers.get("content-security-policy")
    frame = "DENY"
    if path.startswith("/test-processor/"):
        # The test processor's card page: framed by the portal's billing pages only, its own script.
        assert policy == FRAME_POLICY, what
        frame = "SAMEORIGIN"
    elif not schema and policy != POLICY:
        # A route may set a stricter one of its own (an e-mail's HTML shown framed and sandboxed): no script at all.
        directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in policy.split(";") if d.strip())
        assert directives.get("script-src", directives.get("default-src")) == "'none'", what
        assert "sandbox" in directives and "frame-ancestors" in directives, what
        frame = "SAMEORIGIN" if directives["frame-ancestors"] == "'self'" else "DENY"
    else:
        assert policy == (SCHEMA_POLICY if schema else POLICY), what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("x-frame-options") == frame, what
    assert headers.get("referrer-policy") in ("same-origin", "no-referrer", "strict-origin"), what
    vary = {v.strip().lower() for v in headers.get("vary", "").split(",")}
    assert {"hx-request", "hx-target"} <= vary, what
    # A partner's logo (addressed by its digest) and color style sheet are the same for everyone.
    if path.startswith("/static/") or (path.startswith("/brand/") and response.status_code == 200):
        assert "no-store" not in headers.get("cache-control", ""), what
    else:
        assert headers.get("cache-control") == "no-store", what


@pytest.mark.parametrize("who", ["partner", "direct", None], ids=["partner manager", "customer manager", "signed out"])
async def test_every_get_route_answers_with_the_security_headers(app, client, tree, who):
    values = await path_values(tree)
    if who:
        await sign_in(client, tree.email(who))
    routes = get_routes(app)
    assert "/licences/orders/{order_id:int}/menu" in routes and "/static/{file_path:path}" in routes
    statuses = set()
    for route in routes:
        url = fill(route, values)
        for headers in ({}, {"HX-Request": "true", "HX-Target": "order-results"}):
            response = await client.get(url, headers=headers)
            what = f"{who or 'signed out'}: GET {url} {headers} → {response.status_code}"
            assert response.status_code < 500, what
            assert_secured(response, what)
            statuses.add(response.status_code // 100)
    # Pages, redirects and refusals all went through it.
    assert {2, 3} <= statuses if who is None else {2} <= statuses


async def test_redirects_errors_and_posts_carry_them(client, tree):
    signed_in = await sign_in(client, tree.email("partner"))
    assert_secured(signed_in, "POST /login → redirect")
    other = await client.get(f"/companies/{tree.other_customer['id']}")
    assert other.status_code == 404
    assert_secured(other, "another tenant's company → 404 page")
    no_csrf = await client.post("/companies", data={"name": "x"})
    assert no_csrf.status_code == 403
    assert_secured(no_csrf, "POST without CSRF token → 403")


async def test_the_static_files_are_not_marked_no_store(client):
    response = await client.get("/static/portal.js")
    assert response.status_code == 200
    assert_secured(response, "GET /static/portal.js")


async def test_answers_outside_any_route_carry_them(client):
    """Answered by Litestar's router or by an error raised in a middleware,
    outside every route's own middleware stack."""
    response = await client.get("/no-such-page")
    assert response.status_code == 404
    assert_secured(response, "GET /no-such-page")
    response = await client.delete("/dashboard")
    assert response.status_code == 405
    assert_secured(response, "DELETE /dashboard")


async def test_sign_in_attempts_carry_them_also_over_the_limit(tree):
    """The limiter's refusal is raised in a middleware; whatever answers it, it is covered."""
    from portal.web.app import create_app
    from tests.support import running

    async with (
        running(create_app(sign_ins_per_minute=2)) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c,
    ):
        statuses = set()
        for _ in range(4):
            opened = await c.get("/login")
            refused = await c.post(
                "/login",
                data={"email": tree.email("partner"), "password": "wrong", "_csrf_token": csrf_of(opened.text)},
            )
            assert_secured(refused, f"POST /login → {refused.status_code}")
            statuses.add(refused.status_code)
    assert 429 in statuses


# --- templates: nothing inline that a policy without 'unsafe-inline' would block ---------------

INLINE = {
    "an inline event handler": re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE | re.DOTALL),
    "an htmx hx-on handler (eval)": re.compile(r"\s(?:data-)?hx-on", re.IGNORECASE),
    "an inline <script>": re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE),
    # Stripe.js is the one script from elsewhere: its address comes from the settings (CardEntry.script_url).
    "a script from elsewhere than /static/": re.compile(
        r"<script[^>]*\ssrc=\"(?!/static/|\{\{ card_entry\.script_url \}\}\")", re.IGNORECASE
    ),
    "an inline style attribute": re.compile(r"<[^>]*\sstyle\s*=", re.IGNORECASE | re.DOTALL),
    "a <style> element": re.compile(r"<style[\s>]", re.IGNORECASE),
    "a javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    "js: in hx-vals/hx-vars (eval)": re.compile(r"hx-va(?:ls|rs)\s*=\s*['\"]\s*js:", re.IGNORECASE),
}


def page_templates() -> list[Path]:
    # E-mails are not served under the policy (and mail clients want inline styles).
    return [p for p in sorted(TEMPLATES.rglob("*.html")) if "email" not in p.relative_to(TEMPLATES).parts[0]]


@pytest.mark.parametrize("template", page_templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_has_inline_script_or_style(template: Path):
    source = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.DOTALL)  # Jinja comments are not sent
    found = [what for what, pattern in INLINE.items() if pattern.search(source)]
    assert not found, f"{template.relative_to(TEMPLATES)} has {', '.join(found)}"


def test_the_static_check_finds_what_was_there_before():
    """The check itself: the two templates of the XSS as they were."""
    before = [
        """<form method="post" onsubmit="return confirm('Deactivate {{ user.name }}?')">""",
        """<form method="post" action="/x"\n      onsubmit="return confirm('Revoke {{ k.name }}?')">""",
        """<li style="--depth: {{ node.depth }}">""",
        """<script>var name = "{{ user.name }}";</script>""",
    ]
    for source in before:
        assert any(p.search(source) for p in INLINE.values()), source
    assert not any(p.search('<button data-confirm="one" hx-get="/x">') for p in INLINE.values())
