"""Partner staff roles: a partner admin does everything; an account manager
customers, orders and licences; billing staff invoices, payments and refunds and
no licence pages; read-only staff read and change nothing. Every signed-in
route of the app, for each role; the role changes on the staff's user page;
a partner keeps its last admin."""

from __future__ import annotations

import asyncio
import importlib
import re

import pytest

from portal.domain import audit, entitlements, staff, users
from portal.domain.access import Capability, load_actor
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.licences import allocation
from portal.tables import AuditEntry, User
from portal.web.app import create_app
from tests.factories import T0, add_user
from tests.support import csrf_headers, sign_in

ROLES = ("partner_admin", "account_manager", "billing", "read_only")
ADMIN = {"partner_admin"}
ACCOUNT = {"partner_admin", "account_manager"}
BILLING = {"partner_admin", "billing"}
READERS = {"partner_admin", "account_manager", "read_only"}  # licence pages: not billing
EVERYONE = set(ROLES)

# The brief's rules, in this test's own words: (path pattern, who may) for changes…
WRITES = [
    (r"/settings/(api-keys|sign-in|webhooks|emails|brand).*|/companies/\{company_id\}/scim-tokens.*", ADMIN),
    (r"/(notifications|dashboard)/settings|/audit/retention|/companies/\{company_id\}/users/\{user_id\}/role", ADMIN),
    (r"/billing/(settings|catalogue|subscriptions).*|/invoices/.*|/companies/\{company_id\}/billing/.*", BILLING),
    (r"/companies(/.*)?|/licences/.*|/bulk.*|/dashboard/batches/.*|/notifications/\{email_id\}/resend", ACCOUNT),
    (r"/dashboard/open", EVERYONE - {"read_only"}),  # a POST that only opens a filtered list
]
# …and for pages: the first step of a change is the change's; licence pages are not billing's.
READS = [
    (r"/companies/new|/companies/\{company_id\}/users/new|/bulk/confirm", ACCOUNT),
    (r"/dashboard/batches/\{batch_id\}/renew", ACCOUNT),
    (r"/companies/\{company_id\}/licences/orders/new|/licences/orders/\{order_id\}/menu", ACCOUNT),
    (r"/companies/\{company_id\}/billing/(buy|change|add-users|account).*", BILLING),
    (r"/invoices/\{invoice_id\}/(confirm-payment|refund)", BILLING),
    (r"/companies/\{company_id\}/(licences|imports|auto-renewal|alignment|learners\.csv|summary).*", READERS),
    (r"/licences/.*|/bulk/.*|/dashboard/batches", READERS),
]
# Not a staff member's page: no session, another credential, or the user's own account.
NOT_STAFF = re.compile(
    r"/|/login.*|/logout|/forgot-password|/set-password/.*|/healthz|/webhooks/stripe|/test-processor/.*"
    r"|/sso/callback|/brand/.*"
    r"|/api/.*|/scim/.*|/schema.*|/static/.*|/two-factor/.*|/profile.*|/manage/exit|/outbox"
)
MISSING = 999_999  # an id of nothing: a role that may act gets past the role check and finds nothing


def who_may(method: str, path: str) -> set[str]:
    for pattern, roles in WRITES if method not in ("GET", "HEAD") else READS:
        if re.fullmatch(pattern, path):
            return roles
    return EVERYONE if method in ("GET", "HEAD") else EVERYONE - {"read_only"}


def staff_routes() -> list[tuple[str, str]]:
    found = set()
    for route in create_app().routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        if NOT_STAFF.fullmatch(path):
            continue
        found |= {(method, path) for method in route.methods - {"HEAD", "OPTIONS"}}
    return sorted(found)


def refused_for_role(response) -> bool:
    """A 403 for the role (or for read-only access), not for another reason
    (Request Licenses is a customer's, whoever asks)."""
    return response.status_code == 403 and (
        "Your role (" in response.text or "You have read-only access" in response.text
    )


async def staff_tree(tree) -> dict[str, dict]:
    """Acme MSP's staff: its manager from the factory is its partner admin, and one of each other role."""
    people = {role: await add_user(tree.partner, f"{role.replace('_', '-')}@acme.example", role) for role in ROLES[1:]}
    return {"partner_admin": tree.managers["partner"], **people}


def test_the_walk_sees_every_kind_of_route():
    routes = staff_routes()
    assert ("POST", "/companies/{company_id}/users/{user_id}/role") in routes
    assert ("GET", "/companies/{company_id}/licences") in routes and ("POST", "/invoices/{invoice_id}/refund") in routes
    assert who_may("GET", "/companies/{company_id}/licences") == READERS
    assert who_may("POST", "/settings/api-keys") == ADMIN
    assert who_may("GET", "/billing/invoices") == EVERYONE


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_on_every_route(client, tree, role):
    people = await staff_tree(tree)
    await sign_in(client, people[role]["email"])
    headers = await csrf_headers(client)
    checked = refused = 0
    for method, path in staff_routes():
        url = path.replace("{company_id}", str(tree.direct["id"])).replace("{name}", "company")
        url = re.sub(r"\{\w+\}", str(MISSING), url)
        response = await client.request(method, url, headers=headers)
        assert response.status_code < 500, (role, method, path, response.status_code)
        if role in who_may(method, path):
            assert not refused_for_role(response), (role, method, path, response.text[:300])
        else:
            assert refused_for_role(response), (role, method, path, response.status_code)
            refused += 1
        if path.endswith("/manage") and response.status_code == 302:
            await client.post("/manage/exit", headers=headers)
        checked += 1
    assert checked > 100
    assert (refused == 0) == (role == "partner_admin")


async def test_pages_hide_what_the_role_cannot_do(client, tree):
    people = await staff_tree(tree)
    await sign_in(client, people["billing"]["email"])
    company = (await client.get(f"/companies/{tree.direct['id']}")).text
    assert "/licences\"" not in company and "Manage Company" not in company and "Add User" not in company
    assert 'href="/licences/orders"' not in (await client.get("/billing")).text
    keys = (await client.get("/settings/api-keys")).text
    assert "Create key" not in keys
    client.cookies.clear()
    await sign_in(client, people["account_manager"]["email"])
    company = (await client.get(f"/companies/{tree.direct['id']}")).text
    assert "Manage Company" in company and "Add User" in company
    own = (await client.get(f"/companies/{tree.partner['id']}")).text
    assert "Add User" not in own  # the partner's own staff are its admins' to add
    assert refused_for_role(await client.get(f"/companies/{tree.partner['id']}/users/new"))
    assert "Create key" not in (await client.get("/settings/api-keys")).text
    client.cookies.clear()
    await sign_in(client, people["partner_admin"]["email"])
    assert "Create key" in (await client.get("/settings/api-keys")).text
    page = (await client.get(f"/companies/{tree.partner['id']}/users/{people['billing']['id']}")).text
    assert "Change role" in page and "Billing" in page


async def test_domain_functions_refuse_a_role_without_the_capability(tree):
    people = await staff_tree(tree)
    account = await load_actor(people["account_manager"]["id"], None)
    billing = await load_actor(people["billing"]["id"], None)
    assert account is not None and billing is not None
    with pytest.raises(PermissionDenied, match="ask a partner admin"):
        await entitlements.create_key(account, "PSA", T0)
    with pytest.raises(PermissionDenied):
        await users.create_user(account, tree.partner["id"], "new@acme.example", "New", "billing", T0)
    with pytest.raises(PermissionDenied):
        await users.create_user(billing, tree.direct["id"], "l@direct.example", "L", "learner", T0)
    with pytest.raises(PermissionDenied):
        await staff.change_role(account, people["billing"]["id"], "partner_admin", T0)
    with pytest.raises(PermissionDenied):
        await allocation.deactivate_user(account, people["billing"]["id"], T0)
    # What the role may: an account manager adds a customer's learner.
    created, _ = await users.create_user(account, tree.direct["id"], "l@direct.example", "L", "learner", T0)
    assert created["role"] == "learner"


async def test_a_partner_admin_changes_a_role_and_the_log_says_so(client, tree):
    people = await staff_tree(tree)
    await sign_in(client, people["partner_admin"]["email"])
    headers = await csrf_headers(client)
    url = f"/companies/{tree.partner['id']}/users/{people['billing']['id']}"
    response = await client.post(f"{url}/role", data={"role": "account_manager"}, headers=headers)
    assert response.status_code in (302, 303)
    page = await client.get(url)
    assert "is now account manager (was billing)" in page.text
    assert (await User.select(User.role).where(User.id == people["billing"]["id"]).first())["role"] == "account_manager"
    entry = await AuditEntry.select().where(AuditEntry.action == "user.change_role").first()
    said = audit.SENTENCES.sentence(entry["action"], entry["detail"], "Acme MSP")
    assert said == "Made billing@acme.example of Acme MSP an account manager (was billing staff)"
    # Another partner's staff: not found, and unchanged.
    outsider = tree.managers["other"]["id"]
    other = await client.post(
        f"/companies/{tree.other['id']}/users/{outsider}/role", data={"role": "billing"}, headers=headers
    )
    assert other.status_code == 404
    assert (await User.select(User.role).where(User.id == outsider).first())["role"] == "partner_admin"
    # The new role counts from the next request: billing pages' changes are now refused, licence pages open.
    client.cookies.clear()
    await sign_in(client, people["billing"]["email"])
    assert (await client.get(f"/companies/{tree.direct['id']}/licences")).status_code == 200
    assert refused_for_role(await client.get(f"/invoices/{MISSING}/refund"))


async def test_a_customers_manager_has_no_staff_role(tree):
    people = await staff_tree(tree)
    admin = await load_actor(people["partner_admin"]["id"], None)
    with pytest.raises(ValidationFailed):
        await staff.change_role(admin, tree.managers["direct"]["id"], "billing", T0)
    with pytest.raises(ValidationFailed):
        await staff.change_role(admin, people["billing"]["id"], "manager", T0)


async def test_a_partner_cannot_remove_its_last_admin(client, tree):
    people = await staff_tree(tree)
    admin = await load_actor(people["partner_admin"]["id"], None)
    account = people["account_manager"]
    with pytest.raises(ValidationFailed, match="Acme MSP needs at least one partner admin"):
        await staff.change_role(admin, admin.user_id, "read_only", T0)
    # The partner above may not leave a sub-partner without one either.
    with pytest.raises(ValidationFailed, match="Acme North needs at least one partner admin"):
        await allocation.deactivate_user(admin, tree.managers["sub"]["id"], T0)
    with pytest.raises(ValidationFailed, match="Acme North needs at least one partner admin"):
        await staff.change_role(admin, tree.managers["sub"]["id"], "billing", T0)
    # Another admin may demote the first, and then is the last one.
    await staff.change_role(admin, account["id"], "partner_admin", T0)
    await staff.change_role(admin, admin.user_id, "billing", T0)
    second = await load_actor(account["id"], None)
    assert second is not None and second.may(Capability.STAFF)
    with pytest.raises(ValidationFailed, match="Acme MSP needs at least one partner admin"):
        await staff.change_role(second, account["id"], "read_only", T0)
    assert await User.count().where((User.company == tree.partner["id"]) & (User.role == "partner_admin")) == 1
    # Through the page: the refusal says why, and nothing changed.
    await sign_in(client, account["email"])
    headers = await csrf_headers(client)
    url = f"/companies/{tree.partner['id']}/users/{account['id']}"
    await client.post(f"{url}/role", data={"role": "read_only"}, headers=headers)
    assert "Acme MSP needs at least one partner admin" in (await client.get(url)).text


async def test_two_admins_demoting_each_other_at_once_leave_one(tree):
    """Each change locks the company first: the second finds it would leave none, or that its
    own admin role is gone."""
    people = await staff_tree(tree)
    first = await load_actor(people["partner_admin"]["id"], None)
    await staff.change_role(first, people["account_manager"]["id"], "partner_admin", T0)
    second = await load_actor(people["account_manager"]["id"], None)
    results = await asyncio.gather(
        *[staff.change_role(first, second.user_id, "read_only", T0) for _ in range(5)],
        *[staff.change_role(second, first.user_id, "read_only", T0) for _ in range(5)],
        return_exceptions=True,
    )
    # The loser is refused: it would leave no admin, or its actor was demoted a moment before.
    assert all(not isinstance(r, Exception) or isinstance(r, (ValidationFailed, PermissionDenied)) for r in results)
    admins = await User.count().where(
        (User.company == tree.partner["id"]) & (User.role == "partner_admin") & (User.active == True)  # noqa: E712
    )
    assert admins == 1
    assert await AuditEntry.count().where(AuditEntry.action == "user.change_role") == 2  # the promotion, one demotion


async def test_the_migration_makes_partner_and_sub_partner_managers_partner_admins(tree):
    """Before it, every partner and sub-partner manager could do everything: after it, each is its partner admin."""
    staff_roles = importlib.import_module("portal.piccolo_migrations.portal_0025_staff_roles")
    await User.update({User.role: "manager"}, force=True).where(User.role == "partner_admin")
    await add_user(tree.partner, "billing@acme.example", "billing")

    async def roles() -> dict[str, str]:
        return {row["email"]: row["role"] for row in await User.select(User.email, User.role)}

    step = await staff_roles.forwards()
    await step.run()
    after = await roles()
    assert [after[tree.email(k)] for k in ("partner", "sub", "other")] == ["partner_admin"] * 3
    assert [after[tree.email(k)] for k in ("north", "direct", "other_customer")] == ["manager"] * 3
    assert after["billing@acme.example"] == "billing"
    signed_in = await load_actor(tree.managers["partner"]["id"], None)
    assert signed_in is not None and signed_in.may(Capability.API_KEYS)
    await step.run(backwards=True)
    before = await roles()
    assert {before[tree.email(k)] for k in ("partner", "sub", "north")} == {"manager"}
    assert before["billing@acme.example"] == "manager"
