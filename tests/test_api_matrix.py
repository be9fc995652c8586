"""Every /api/v1 route × every kind of key, aimed at ids outside the key's wing
(another partner's; and, for a sub-partner's keys, its parent's customer): the
answer of each cell comes from the declared tables below (the route's scope,
whether it lists or names one row; the key's scopes), never from the route's
code. Another tenant's company, user, order, batch, invoice or e-mail answers
404 as an unknown id would (never 403, never its data), a list shows none of its
rows even when filtered by its ids, and no cell changes anything in the
database. A route added under /api/v1 without a row here fails the guard. Each
engine; the data is built once and every cell runs in one test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from portal.domain import entitlements
from portal.domain.access import load_actor
from portal.domain.billing import accounts, subscriptions
from portal.domain.billing.payments import CardDetails
from portal.domain.billing.quotes import Purchase
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.orders import requests
from portal.piccolo_app import APP_CONFIG
from portal.tables import Company
from portal.web.api_v1 import ApiLimits
from portal.web.app import create_app
from tests.factories import add_user
from tests.support import PROCESSOR, card_token

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
GOOD_CARD = CardDetails("4242 4242 4242 4242", 4, 2030, "123")


# The embedded app's timers would deliver the e-mails the data queued while the cells run:
# what changes the database here must be the requests alone.
pytestmark = pytest.mark.no_timers


@dataclass(frozen=True)
class Route:
    scope: str  # the one scope the route needs
    lists: bool = False  # a page of rows (200, none of the other partner's) rather than one row (404)
    filters: tuple[str, ...] = ()  # query parameters naming an id, each tried with the other partner's id
    body: dict = field(default_factory=dict)  # what a write sends, {name} filled with the other partner's ids


# (method, path as the app names it) → what it needs. Every /api/v1 route has a row (test_every_api_route_has_a_row).
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/v1/companies"): Route("read", lists=True),
    ("GET", "/api/v1/companies/{company_id:int}"): Route("read"),
    ("GET", "/api/v1/users"): Route("read", lists=True, filters=("company_id",)),
    ("GET", "/api/v1/users/{user_id:int}"): Route("read"),
    ("GET", "/api/v1/orders"): Route("read", lists=True, filters=("company_id",)),
    ("GET", "/api/v1/orders/{order_id:int}"): Route("read"),
    ("POST", "/api/v1/orders"): Route("orders", body={"company_id": "{company_id}", "quantity": 3}),
    ("POST", "/api/v1/orders/{order_id:int}/assign"): Route("orders"),
    ("POST", "/api/v1/orders/{order_id:int}/decline"): Route("orders", body={"reason": "Not through the API"}),
    ("GET", "/api/v1/batches"): Route("read", lists=True, filters=("company_id",)),
    ("GET", "/api/v1/batches/{batch_id:int}"): Route("read"),
    ("GET", "/api/v1/allocations"): Route("read", lists=True, filters=("company_id", "batch_id")),
    ("GET", "/api/v1/invoices"): Route("billing", lists=True, filters=("company_id",)),
    ("GET", "/api/v1/invoices/{invoice_id:int}"): Route("billing"),
    ("GET", "/api/v1/payments"): Route("billing", lists=True, filters=("company_id", "invoice_id")),
    ("GET", "/api/v1/entitlements/{email:str}"): Route("read"),
}


@dataclass(frozen=True)
class Key:
    scopes: tuple[str, ...] = ()  # none: no key is sent
    live: bool = True  # False: a key that was revoked, or never made


# The columns: keys of the company that asks (and no key at all).
KEYS: dict[str, Key] = {
    "no key": Key(),
    "unknown": Key(("read", "orders", "billing"), live=False),
    "revoked": Key(("read", "orders", "billing"), live=False),
    "read": Key(("read",)),
    "orders": Key(("orders",)),
    "billing": Key(("billing",)),
    "every scope": Key(("read", "orders", "billing")),
}


@dataclass(frozen=True)
class Target:
    asks: str  # the company of the tree whose keys ask
    customer: str  # the customer whose rows they name, outside the wing of `asks`
    owner: str  # a manager over that customer, whose key may read those rows
    outside: tuple[str, ...]  # companies whose rows no list of `asks` may hold
    shows: tuple[str, ...]  # text of theirs that no answer may hold


# Whose ids are asked for, by whom: another partner's, and a sub-partner's parent's (above and beside it).
TARGETS = {
    "another partner": Target(
        "partner", "other_customer", "other", ("other", "other_customer"), ("Other", "other-customer.example")
    ),
    "beside a sub-partner": Target("sub", "direct", "partner", ("partner", "direct"), ("Direct", "direct.example")),
}


def expected(route: Route, key: Key) -> int:
    if not key.scopes or not key.live:
        return 401
    if route.scope not in key.scopes:
        return 403
    return 200 if route.lists else 404


def test_every_api_route_has_a_row():
    served = {
        (method, route.path)
        for route in create_app().routes
        if route.path.startswith("/api/v1")
        for method in route.methods - {"HEAD", "OPTIONS"}
    }
    assert served - set(ROUTES) == set(), "an /api/v1 route without a row in ROUTES"
    assert set(ROUTES) - served == set(), "a row in ROUTES for a route the app no longer serves"


def test_the_table_gives_every_answer_a_key_can_meet():
    """The table is not all 404s: each route meets 401, 403 and its own answer in some column."""
    for route in ROUTES.values():
        assert {expected(route, key) for key in KEYS.values()} == {401, 403, 200 if route.lists else 404}


async def rows_of(tree, customer_key: str) -> dict:
    """A customer with a learner holding a seat of a batch bought online (an
    invoice, paid by card: a payment), and an order still requested: its ids."""
    customer = await load_actor(tree.managers[customer_key]["id"], None)
    company_id = getattr(tree, customer_key)["id"]
    domain = customer_key.replace("_", "-")
    learner = await add_user(getattr(tree, customer_key), f"learner@{domain}.example", role="learner")
    await accounts.create_online_billing_account(
        customer,
        company_id,
        payment_method=await card_token(GOOD_CARD),
        now=NOW,
        billing_name=f"{getattr(tree, customer_key)['name']} Ltd",
        billing_email=f"ap@{domain}.example",
        address="1 Main St",
        country="US",
        processor=PROCESSOR,
    )
    bought = await subscriptions.buy(
        customer, company_id, Purchase("pro", 0, 0, (), "online"), NOW, processor=PROCESSOR
    )
    assert bought["charge"].ok and bought["batch"], bought
    await allocation.allocate(customer, company_id, Selection(user_ids=(learner["id"],)), NOW)
    order = await requests.request_order(customer, company_id, 2, None, "", NOW)
    return {
        "company_id": company_id,
        "user_id": learner["id"],
        "order_id": order["id"],
        "batch_id": bought["batch"]["id"],
        "invoice_id": bought["invoice"]["id"],
        "email": learner["email"],
    }


async def headers_of(tree, who: str, keys: dict[str, Key]) -> dict[str, dict[str, str]]:
    partner = await load_actor(tree.managers[who]["id"], None)
    made = {}
    for name, key in keys.items():
        if not key.scopes:
            made[name] = {}
        elif name == "unknown":
            made[name] = {"Authorization": "Bearer lp_" + "x" * 43}
        else:
            row, secret = await entitlements.create_key(partner, f"PSA {name}", NOW, key.scopes)
            if not key.live:
                await entitlements.revoke_key(partner, row["id"], NOW)
            made[name] = {"Authorization": f"Bearer {secret}"}
    return made


def url_of(path: str, ids: dict) -> str:
    for name, value in ids.items():
        path = path.replace(f"{{{name}:int}}", str(value)).replace(f"{{{name}:str}}", str(value))
    assert "{" not in path, path
    return path


async def everything() -> dict[str, list]:
    """Every row of every table (the API key's own rows included), to compare before and after."""
    rows = {}
    for table in APP_CONFIG.table_classes:
        name = table._meta.tablename
        rows[name] = sorted(map(repr, await Company.raw(f"SELECT * FROM {name}")))
    return rows


async def test_every_route_and_key_against_ids_outside_the_wing(client, app, tree):
    app.state.api_limits = ApiLimits(per_minute=10_000)  # every cell of a column is one key's requests
    ids = {name: await rows_of(tree, target.customer) for name, target in TARGETS.items()}
    keys = {name: await headers_of(tree, target.asks, KEYS) for name, target in TARGETS.items()}
    before = await everything()
    wrong: list[tuple] = []
    for whose, target in TARGETS.items():
        outside = {getattr(tree, company)["id"] for company in target.outside}
        for (method, path), route in ROUTES.items():
            for name, key in KEYS.items():
                wrong += await cell(client, whose, target, outside, ids[whose], method, path, route, name, key, keys)
    assert wrong == [], "\n".join(map(repr, wrong))
    assert await everything() == before, "a refused request changed the database"

    # The same ids are real: a key of a partner over them reads every one, and acts on the order.
    for whose, target in TARGETS.items():
        await owner_reads_and_acts(client, tree, target, ids[whose])


async def cell(client, whose, target, outside, ids, method, path, route, name, key, keys) -> list[tuple]:
    """What is wrong with one cell (a list route asks bare, then by each of their ids)."""
    wrong = []
    want = expected(route, key)
    for params in [{}] + [{f: ids[f]} for f in route.filters] if route.lists else [{}]:
        body = {k: (ids["company_id"] if v == "{company_id}" else v) for k, v in route.body.items()}
        headers = keys[whose][name] | ({"Idempotency-Key": f"matrix-{name}-{path}"} if method == "POST" else {})
        answer = await client.request(method, url_of(path, ids), params=params, json=body or None, headers=headers)
        where = (whose, method, path, name, params)
        if answer.status_code != want:
            wrong.append(where + (f"{answer.status_code} for {want}", answer.text[:200]))
            continue
        if any(text in answer.text for text in target.shows):
            wrong.append(where + ("shows their data", answer.text[:200]))
        if want == 200:
            rows = answer.json()["data"]
            theirs = [r for r in rows if (r["id"] if "companies" in path else r["company_id"]) in outside]
            if theirs or (params and rows):
                wrong.append(where + ("lists rows outside the wing", rows[:3]))
        elif answer.json().get("status_code") != want or not answer.json().get("detail"):
            wrong.append(where + ("not the API's error shape", answer.text[:200]))
    return wrong


async def owner_reads_and_acts(client, tree, target: Target, ids: dict) -> None:
    owner = await load_actor(tree.managers[target.owner]["id"], None)
    _, secret = await entitlements.create_key(owner, "Their PSA", NOW, ("read", "orders", "billing"))
    theirs = {"Authorization": f"Bearer {secret}"}
    for (method, path), route in ROUTES.items():
        if method == "GET":
            params = {f: ids[f] for f in route.filters}
            answer = await client.get(url_of(path, ids), params=params, headers=theirs)
            assert answer.status_code == 200, (path, answer.text)
            assert not route.lists or answer.json()["data"], (path, "their own list is empty")
    made = await client.post("/api/v1/orders", json={"company_id": ids["company_id"], "quantity": 1}, headers=theirs)
    assert made.status_code == 201, made.text
    assigned = await client.post(url_of("/api/v1/orders/{order_id:int}/assign", ids), headers=theirs)
    assert assigned.status_code == 200 and assigned.json()["status"] == "assigned", assigned.text
    declined = await client.post(
        f"/api/v1/orders/{made.json()['id']}/decline", json={"reason": "Ordered twice"}, headers=theirs
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined", declined.text
