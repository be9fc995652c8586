"""The authorization rule over every route: each role, on its own company, on a
company under its wing, and on one outside it. Outside answers 404, never 403,
and never another tenant's data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from portal.domain.access import Actor, load_actor, under_wing
from portal.domain.billing.quotes import Purchase
from portal.domain.billing.subscriptions import buy
from portal.domain.clock import utcnow
from portal.tables import Company
from portal.tables.billing import Subscription
from portal.web.app import create_app
from tests.support import PROCESSOR, csrf_headers, sign_in

# (method, path template) of every route that takes a company id.
COMPANY_ROUTES = [
    ("GET", "/companies/{id}"),
    ("GET", "/companies/{id}/users/new"),
    ("POST", "/companies/{id}/users"),
    ("POST", "/companies/{id}/manage"),
    ("GET", "/companies/{id}/licences"),
    ("GET", "/companies/{id}/licences/select-all"),
    ("POST", "/companies/{id}/licences/allocate"),
    ("GET", "/companies/{id}/licences/orders/new"),
    ("POST", "/companies/{id}/licences/orders"),
    ("GET", "/companies/{id}/imports"),
    ("POST", "/companies/{id}/imports"),
    ("GET", "/companies/{id}/learners.csv"),
    ("GET", "/companies/{id}/summary"),
    ("GET", "/companies/{id}/auto-renewal"),
    ("POST", "/companies/{id}/auto-renewal"),
    ("GET", "/companies/{id}/alignment"),
    ("POST", "/companies/{id}/alignment"),
]
# Routes by order or user id: tests/test_licences_web.py::test_another_tenants_order_batch_and_user_ids_answer_404
BY_OTHER_IDS = {
    # tests/test_billing_refund_pages.py::test_another_partners_invoice_and_credit_note_are_not_found
    "/credit-notes/{credit_note_id:int}",
    # tests/test_bulk_web.py: another partner's bulk run answers 404 (page, progress, resume);
    # starting one is for partner managers (a customer manager: 403)
    "/bulk",
    "/bulk/confirm",
    "/bulk/{run_id:int}",
    "/bulk/{run_id:int}/progress",
    "/bulk/{run_id:int}/resume",
    # tests/test_billing_pdf.py: another company's credit note PDF answers 404
    "/credit-notes/{credit_note_id:int}/pdf",
    "/licences/orders/{order_id:int}/menu",
    "/licences/orders/{order_id:int}/assign",
    "/licences/orders/{order_id:int}/decline",
    "/companies/{company_id:int}/users/{user_id:int}",
    "/companies/{company_id:int}/users/{user_id:int}/deactivate",
    "/companies/{company_id:int}/licences/orders/{order_id:int}/cancel",
    # tests/test_notifications.py: an e-mail outside the wing answers 404
    "/notifications/{email_id:int}",
    "/notifications/{email_id:int}/message.html",
    "/notifications/{email_id:int}/resend",
    # tests/test_imports_web.py::test_another_tenants_import_answers_404
    "/companies/{company_id:int}/imports/{import_id:int}",
    "/companies/{company_id:int}/imports/{import_id:int}/progress",
    "/companies/{company_id:int}/imports/{import_id:int}/column",
    "/companies/{company_id:int}/imports/{import_id:int}/renew",
    "/companies/{company_id:int}/imports/{import_id:int}/refresh",
    "/companies/{company_id:int}/imports/{import_id:int}/rows.csv",
    # tests/test_dashboard.py: another tenant's batch, or company named in the form, answers 404
    "/dashboard/batches/{batch_id:int}/renew",
    "/dashboard/open",
    # tests/test_webhooks.py::test_the_pages: another partner's endpoint answers 404 to each
    "/settings/webhooks/{endpoint_id:int}",
    "/settings/webhooks/{endpoint_id:int}/test",
    "/settings/webhooks/{endpoint_id:int}/rotate-secret",
    "/settings/webhooks/{endpoint_id:int}/delete",
    "/settings/webhooks/{endpoint_id:int}/deliveries/{delivery_id:int}/resend",
    # tests/test_scim.py: another company's token page and tokens answer 404
    "/companies/{company_id:int}/scim-tokens",
    "/companies/{company_id:int}/scim-tokens/{token_id:int}/revoke",
    # tests/test_two_factor.py: another tenant's manager answers 404; customers are refused
    "/companies/{company_id:int}/users/{user_id:int}/second-factor/reset",
    # tests/test_staff_roles.py: partner admins only; another tenant's user answers 404
    "/companies/{company_id:int}/users/{user_id:int}/role",
}
# Routes without an id, and who may use them.
PLAIN_ROUTES = [
    "/dashboard",
    "/billing",
    "/billing/subscriptions",
    "/billing/invoices",
    "/billing/invoices.csv",
    "/billing/invoices/ageing.csv",
    "/billing/settings",
    "/companies",
    "/companies/new",
    "/audit",
    "/audit/export.csv",
    "/audit/filters/who",
    "/licences/orders",
    "/notifications",
    "/profile",
    "/licences/orders/filters/status",
    "/licences/orders/export.csv",
    # Partner managers only (a customer manager: 403, tests/test_dashboard_pipeline.py)
    "/dashboard/pipeline",
    "/dashboard/pipeline/pipeline.csv",
    "/settings/webhooks",  # a customer manager: 403 (tests/test_webhooks.py)
    # A partner's words and brand: a customer manager 403 (tests/test_branding_web.py)
    "/settings/emails",
    "/settings/brand",
]
# Routes without an id that answer 400 to a bare request, with the query that makes them answer 200.
QUERY_ROUTES = {"/dashboard/batches": "?field=ends_at&start=2026-01-01&end=2026-02-01"}
PUBLIC_ROUTES = {"/", "/login", "/logout", "/forgot-password", "/healthz", "/set-password/{token:str}"}
# The test processor's card page is the processor's, as Stripe's card fields are Stripe's:
# it knows no one and hands out test tokens only (tests/test_billing_card_entry.py).
PUBLIC_ROUTES |= {"/test-processor/card"}
# Stripe's events: no session, a signature instead (tests/test_billing_webhooks.py).
PUBLIC_ROUTES |= {"/webhooks/stripe"}
# A partner's logo (by its digest) and color, which its e-mails load: nothing else (tests/test_branding_web.py).
PUBLIC_ROUTES |= {"/brand/logo/{digest:str}", "/brand/colour/{rrggbb:str}"}
# The second step of signing in: only a session past the password (tests/test_two_factor_routes.py).
PUBLIC_ROUTES |= {"/login/code", "/login/code/passkey", "/login/passkey"}
# The identity provider's answer: only the browser that started the sign-in (tests/test_sso.py).
PUBLIC_ROUTES |= {"/sso/callback"}
# The signed-in user's own account, whoever they are (tests/test_two_factor.py, tests/test_sessions_profile.py):
# another user's session id ends nothing; sign-in settings are partner managers' own company's.
OWN_ACCOUNT_ROUTES = {
    "/two-factor/authenticator",
    "/two-factor/authenticator/remove",
    "/two-factor/recovery-codes",
    "/two-factor/passkey",
    "/two-factor/passkeys/{passkey_id:int}/remove",
    "/profile/password",
    "/profile/sessions/{session_id:int}/end",
    "/profile/sessions/end-others",
    "/settings/sign-in",
    # A partner manager's own company's single sign-on (tests/test_sso.py; a customer manager: 403).
    "/settings/sign-in/sso",
    "/settings/sign-in/sso/test",
    "/settings/sign-in/sso/remove",
    # A partner's own words for one kind of e-mail: the actor's own company only, a customer 403
    # (tests/test_branding_web.py)
    "/settings/emails/{kind:str}",
    "/settings/emails/{kind:str}/preview",
    "/settings/emails/{kind:str}/test",
    "/settings/emails/{kind:str}/reset",
}
MOVED_ROUTES = {"/outbox"}  # a redirect to /notifications, for the signed-in
# By API key, and the partner's own keys: tests/test_entitlements_api.py
API_ROUTES = {"/api/v1/entitlements/{email:str}", "/settings/api-keys", "/settings/api-keys/{key_id:int}/revoke"}
# By API key, the partner API: tests/test_partner_api.py (another partner's ids answer 404)
API_ROUTES |= {
    "/api/v1/companies",
    "/api/v1/companies/{company_id:int}",
    "/api/v1/users",
    "/api/v1/users/{user_id:int}",
    "/api/v1/orders",
    "/api/v1/orders/{order_id:int}",
    "/api/v1/orders/{order_id:int}/assign",
    "/api/v1/orders/{order_id:int}/decline",
    "/api/v1/batches",
    "/api/v1/batches/{batch_id:int}",
    "/api/v1/allocations",
    "/api/v1/invoices",
    "/api/v1/invoices/{invoice_id:int}",
    "/api/v1/payments",
}
# By SCIM token, one company's users only: tests/test_scim.py (another company's ids answer 404)
API_ROUTES |= {
    "/scim/v2/Users",
    "/scim/v2/Users/{user_id:str}",
    "/scim/v2/.search",
    "/scim/v2/ServiceProviderConfig",
    "/scim/v2/ResourceTypes",
    "/scim/v2/ResourceTypes/{name:str}",
    "/scim/v2/Schemas",
    "/scim/v2/Schemas/{urn:str}",
}
PUBLIC_PREFIXES = ("/static/", "/schema")  # files and the OpenAPI document

# role → {target → status of GET /companies/{id}}
CASES = {
    "partner": {"partner": 200, "north": 200, "direct": 200, "sub": 200, "other_customer": 404, "other": 404},
    "sub": {"sub": 200, "north": 200, "partner": 404, "direct": 404, "other_customer": 404},
    "north": {"north": 200, "sub": 404, "direct": 404, "partner": 404, "other_customer": 404},
}


def test_every_route_is_covered():
    covered = {path.replace("{id}", "{company_id:int}") for _, path in COMPANY_ROUTES} | set(PLAIN_ROUTES)
    covered |= PUBLIC_ROUTES | BY_OTHER_IDS | API_ROUTES | MOVED_ROUTES | set(QUERY_ROUTES) | OWN_ACCOUNT_ROUTES
    covered |= {"/manage/exit", "/licences/orders/filters/{name:str}"}
    # Partner-only (403 to customers: tests/test_billing_web.py), without another tenant's id.
    covered |= {"/billing/filters/{name:str}", "/billing/invoices/filters/{name:str}", "/billing/catalogue"}
    covered |= {"/billing/settings/seller"}  # POST, the actor's own company: tests/test_billing_pdf.py
    covered |= {"/dashboard/settings"}  # POST, partner managers only: tests/test_dashboard_figures.py
    covered |= {"/notifications/settings"}  # partner managers only: tests/test_email_settings_web.py
    # POST, partner managers only, for their own company: tests/test_audit_log.py
    covered |= {"/audit/filters/{name:str}", "/audit/retention"}
    covered |= {path for _, path in billing_routes_by_id()}
    routes = {route.path for route in create_app().routes}
    covered = {c.rstrip("/") for c in covered}
    missing = {p for p in routes if p.rstrip("/") not in covered and not p.startswith(PUBLIC_PREFIXES)}
    assert not missing, f"routes without an authorization test: {missing}"


BILLING_IDS = ("company_id", "subscription_id", "invoice_id")
# Partner staff's actions: a customer manager is refused (403 for the role, or 404 for the id).
BILLING_PARTNER_ONLY = {"/confirm-cancellation", "/payment", "/reissue"}


def billing_routes_by_id() -> list[tuple[str, str]]:
    """(method, path) of every billing route that names a company, subscription or invoice."""
    found = set()
    for route in create_app().routes:
        billing = "/billing" in route.path or route.path.startswith("/invoices/")
        if billing and any(f"{{{name}:int}}" in route.path for name in BILLING_IDS):
            found |= {(method, route.path) for method in route.methods - {"HEAD", "OPTIONS"}}
    return sorted(found)


async def test_billing_routes_answer_404_to_another_tenant(client, tree):
    """Every billing route by every method, with North Customer's company,
    subscription and invoice ids, for a manager of another partner and of its customer."""
    customer = await load_actor(tree.managers["north"]["id"], None)
    bought = await buy(customer, tree.north["id"], Purchase("pro", 2, 1, (), "invoice"), utcnow(), processor=PROCESSOR)
    values = {
        "company_id": tree.north["id"],
        "subscription_id": bought["subscription"]["id"],
        "invoice_id": bought["invoice"]["id"],
    }
    routes = billing_routes_by_id()
    assert len(routes) >= 20 and ("POST", "/invoices/{invoice_id:int}/payment") in routes
    for who in ("other", "other_customer"):
        client.cookies.clear()
        await sign_in(client, tree.email(who))
        headers = await csrf_headers(client)
        for method, path in routes:
            url = path
            for name, value in values.items():
                url = url.replace(f"{{{name}:int}}", str(value))
            response = await client.request(method, url, headers=headers, data={"tier": "pro", "method": "invoice"})
            partner_only = who == "other_customer" and url.endswith(tuple(BILLING_PARTNER_ONLY))
            expected = (403, 404) if partner_only else (404,)
            assert response.status_code in expected, (who, method, url, response.status_code)
            assert "North Customer" not in response.text
    assert (await Subscription.select(Subscription.status).first())["status"] == "pending"


def answer_inside_the_wing(role: str, target: str, method: str, path: str) -> int:
    """What each route answers, inside the wing, to a bare request (no form
    fields): on its merits, never "not found", and never a 5xx."""
    customer = target in ("north", "direct")
    if path.endswith("/alignment"):
        # A partner manager's preview (saying there is nothing to align), and its Confirm with no preview.
        return 403 if role == "north" else (200 if method == "GET" else 400)
    if method == "GET":
        return 200
    if path.endswith("/users"):
        return 400  # the Add User form, with what is missing
    if path.endswith("/auto-renewal"):
        return 403 if role == "north" else 400  # a partner manager's choice, with what is missing
    if path.endswith("/manage"):
        return 302 if customer and role != "north" else 403  # partner managers, on customers only
    if path.endswith("/imports"):
        return 400  # no file chosen: the upload form says so
    if path.endswith("/allocate"):
        return 409  # nothing selected, no seats: the page offers to request more
    if path.endswith("/licences/orders"):
        return 400 if customer else 403  # Request Licenses is a customer's, with its quantity missing
    raise AssertionError(f"no expected answer for {method} {path}")


@pytest.mark.parametrize("role", CASES)
async def test_company_routes_follow_the_wing(client, tree, role):
    await sign_in(client, tree.email(role))
    headers = await csrf_headers(client)
    for target, expected in CASES[role].items():
        company_id = getattr(tree, target)["id"]
        for method, path in COMPANY_ROUTES:
            response = await client.request(method, path.format(id=company_id), headers=headers)
            if expected == 404:
                assert response.status_code == 404, (role, target, method, path, response.status_code)
                assert getattr(tree, target)["name"] not in response.text
            else:
                wanted = answer_inside_the_wing(role, target, method, path)
                assert response.status_code == wanted, (role, target, method, path, response.status_code)
            if response.request.method == "POST" and path.endswith("/manage") and response.status_code == 302:
                await client.post("/manage/exit", headers=headers)  # back to the partner's own pages


async def test_customer_manager_cannot_use_partner_pages(client, tree):
    await sign_in(client, tree.email("north"))
    for path in (
        "/companies",
        "/companies/new",
        "/audit",
        "/audit/export.csv",
        "/audit/filters/company",
        "/licences/orders",
        "/licences/orders/filters/customer",
    ):
        response = await client.get(path)
        assert response.status_code == 403, path
    dashboard = await client.get("/dashboard")
    assert dashboard.headers["location"] == f"/companies/{tree.north['id']}"


@pytest.mark.parametrize("role", ["partner", "sub"])
async def test_partner_managers_open_every_plain_route(client, tree, role):
    await sign_in(client, tree.email(role))
    for path in PLAIN_ROUTES + [path + query for path, query in QUERY_ROUTES.items()]:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    for path in QUERY_ROUTES:
        assert (await client.get(path)).status_code == 400, path
    moved = await client.get("/outbox")
    assert moved.status_code == 301 and moved.headers["location"] == "/notifications"


async def test_signed_out_visitors_are_sent_to_sign_in(client, tree):
    for path in PLAIN_ROUTES + [f"/companies/{tree.north['id']}"]:
        response = await client.get(path)
        assert response.status_code in (302, 303), path
        assert response.headers["location"].startswith("/login")


async def test_company_list_never_shows_another_tenant(client, tree):
    await sign_in(client, tree.email("sub"))
    page = await client.get("/companies")
    assert "North Customer" in page.text
    for outside in ("Direct Customer", "Other Customer", "Other MSP", "Acme MSP"):
        assert outside not in page.text


async def test_creating_under_a_company_outside_the_wing_is_refused(client, tree):
    await sign_in(client, tree.email("sub"))
    headers = await csrf_headers(client)
    response = await client.post(
        "/companies", data={"name": "Sneaky", "kind": "customer", "parent_id": tree.partner["id"]}, headers=headers
    )
    assert response.status_code == 400
    assert "Choose a company under your wing." in response.text


def test_the_wing_is_a_literal_prefix_and_only_ever_a_path():
    """under_wing writes the prefix into the SQL (a generic plan of `LIKE $1`
    misjudges a partner whose wing is everything); so it must be a path."""
    actor = Actor(1, "A", "a@x.example", 1, "Partner", "partner", "/1/7/")
    assert "LIKE '/1/7/%'" in str(Company.select(Company.id).where(under_wing(actor)))
    for bad in ("/1/7/' OR '1'='1", "/1/٣/", "", "/1/7"):
        with pytest.raises(ValueError):
            under_wing(replace(actor, company_path=bad))
