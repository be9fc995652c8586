"""/api/v1 for an MSP's scripts and PSA sync: keys and their scopes, tenants,
cursor pages, orders requested, assigned and declined through the same rules as
the pages, Idempotency-Key under ten requests at once, rate limits, and the
OpenAPI document that declares every answer. Each engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from portal.domain import entitlements
from portal.domain.access import load_actor
from portal.domain.billing import invoices
from portal.domain.orders import requests
from portal.tables import AuditEntry, LicenceOrder
from portal.web.api_v1 import ApiLimits
from tests.factories import add_user

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


async def key_for(tree, who: str = "partner", scopes=("read",)) -> dict[str, str]:
    actor = await load_actor(tree.managers[who]["id"], None)
    _, key = await entitlements.create_key(actor, f"PSA {who}", NOW, scopes)
    return {"Authorization": f"Bearer {key}"}


async def all_pages(client, path: str, headers: dict, limit: int = 2) -> list[dict]:
    rows, cursor = [], None
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        answer = await client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["data"]) <= limit
        rows += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


async def test_a_key_reads_its_wing_page_by_page(client, tree):
    headers = await key_for(tree)
    companies = await all_pages(client, "/api/v1/companies", headers)
    assert sorted(c["name"] for c in companies) == ["Acme MSP", "Acme North", "Direct Customer", "North Customer"]
    assert [c["id"] for c in companies] == sorted(c["id"] for c in companies)
    sub = await all_pages(client, "/api/v1/companies", await key_for(tree, "sub"))
    assert sorted(c["name"] for c in sub) == ["Acme North", "North Customer"]
    other = await client.get(f"/api/v1/companies/{tree.other_customer['id']}", headers=headers)
    assert other.status_code == 404 and other.json()["detail"]
    first = (await client.get("/api/v1/companies", params={"limit": 1}, headers=headers)).json()
    forged = await client.get("/api/v1/companies", params={"limit": 1, "cursor": "MTAwMC5mYWtl"}, headers=headers)
    assert forged.json()["data"] == first["data"]  # a cursor not ours starts again


async def test_users_with_their_status_and_a_filter(client, tree):
    await add_user(tree.direct, "learner@direct.example", role="learner")
    headers = await key_for(tree)
    users = await all_pages(client, "/api/v1/users", headers, limit=50)
    assert "manager@other.example" not in {u["email"] for u in users}
    direct = (await client.get("/api/v1/users", params={"company_id": tree.direct["id"]}, headers=headers)).json()
    assert {(u["email"], u["status"]) for u in direct["data"]} == {
        ("manager@direct.example", "unlicensed"),
        ("learner@direct.example", "unlicensed"),
    }


async def test_orders_through_the_api_follow_the_pages_rules(client, tree):
    reader, orderer = await key_for(tree), await key_for(tree, scopes=("read", "orders"))
    body = {"company_id": tree.direct["id"], "quantity": 5, "po_number": "PO-9"}
    refused = await client.post("/api/v1/orders", json=body, headers=reader)
    assert refused.status_code == 403 and "orders" in refused.json()["detail"]
    made = await client.post("/api/v1/orders", json=body, headers=orderer)
    assert made.status_code == 201, made.text
    order = made.json()
    assert (order["status"], order["quantity"], order["po_number"], order["product"]) == (
        "requested", 5, "PO-9", "sat-premium"
    )  # fmt: skip
    outside = await client.post(
        "/api/v1/orders", json=body | {"company_id": tree.other_customer["id"]}, headers=orderer
    )
    assert outside.status_code == 404
    partner_itself = await client.post(
        "/api/v1/orders", json=body | {"company_id": tree.partner["id"]}, headers=orderer
    )
    assert partner_itself.status_code == 403
    assigned = await client.post(f"/api/v1/orders/{order['id']}/assign", headers=orderer)
    assert assigned.status_code == 200 and assigned.json()["status"] == "assigned" and assigned.json()["batch_id"]
    again = await client.post(f"/api/v1/orders/{order['id']}/assign", headers=orderer)
    assert again.status_code == 409 and again.json()["detail"]
    batch = await client.get(f"/api/v1/batches/{assigned.json()['batch_id']}", headers=reader)
    assert batch.json()["seats"] == 5
    second = (await client.post("/api/v1/orders", json=body | {"quantity": 2}, headers=orderer)).json()
    declined = await client.post(
        f"/api/v1/orders/{second['id']}/decline", json={"reason": "Order via PSA"}, headers=orderer
    )
    assert declined.json()["status"] == "declined" and declined.json()["decline_reason"] == "Order via PSA"
    entries = await AuditEntry.select(AuditEntry.action).where(AuditEntry.action.like("order.%"))
    assert [e["action"] for e in entries].count("order.request") == 2


async def test_ten_requests_with_one_idempotency_key_order_once(client, tree):
    headers = await key_for(tree, scopes=("orders",)) | {"Idempotency-Key": "psa-sync-4711"}
    body = {"company_id": tree.direct["id"], "quantity": 3}
    answers = await asyncio.gather(*(client.post("/api/v1/orders", json=body, headers=headers) for _ in range(10)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await LicenceOrder.count() == 1
    other_key = await client.post("/api/v1/orders", json=body, headers=headers | {"Idempotency-Key": "psa-sync-4712"})
    assert other_key.json()["id"] != answers[0].json()["id"]


async def test_billing_needs_its_scope(client, tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    assert partner  # invoices come from billing; an empty list still proves the scope
    reader, biller = await key_for(tree), await key_for(tree, scopes=("billing",))
    assert (await client.get("/api/v1/invoices", headers=reader)).status_code == 403
    assert (await client.get("/api/v1/invoices", headers=biller)).json() == {"data": [], "next_cursor": None}
    assert (await client.get("/api/v1/companies", headers=biller)).status_code == 403
    assert invoices  # the module that writes what this lists


async def test_keys_unknown_revoked_and_over_the_limit(client, app, tree):
    assert (await client.get("/api/v1/companies")).status_code == 401
    wrong = await client.get("/api/v1/companies", headers={"Authorization": "Bearer lp_nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    headers = await key_for(tree)
    app.state.api_limits = ApiLimits(per_minute=3)
    answers = [await client.get("/api/v1/companies", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    other = await key_for(tree, "sub")
    assert (await client.get("/api/v1/companies", headers=other)).status_code == 200  # each key its own count


async def test_the_document_declares_every_answer_and_405_says_allow(client):
    doc = (await client.get("/schema/openapi.json")).json()
    for path, methods in doc["paths"].items():
        if not path.startswith("/api/v1/") or "entitlements" in path:
            continue
        for method, operation in methods.items():
            assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
    trace = await client.request("TRACE", "/healthz")
    assert trace.status_code == 405 and "GET" in trace.headers["allow"]


@pytest.mark.parametrize("missing", ["company_id", "quantity"])
async def test_a_bad_body_is_a_400_that_says_what(client, tree, missing):
    headers = await key_for(tree, scopes=("orders",))
    body = {"company_id": tree.direct["id"], "quantity": 2}
    body.pop(missing)
    answer = await client.post("/api/v1/orders", json=body, headers=headers)
    assert answer.status_code == 400 and answer.json()["detail"]
    assert await LicenceOrder.count() == 0
    assert requests  # nothing ordered by the rule behind the route


async def test_another_partners_ids_answer_404_on_every_route_with_an_id(client, tree):
    other = await key_for(tree, "other", scopes=("read", "orders", "billing"))
    partner = await load_actor(tree.managers["partner"]["id"], None)
    order = await requests.request_order(partner, tree.direct["id"], 2, None, "", NOW)
    user = tree.managers["direct"]["id"]
    for path in (
        f"/api/v1/companies/{tree.direct['id']}",
        f"/api/v1/users/{user}",
        f"/api/v1/orders/{order['id']}",
    ):
        assert (await client.get(path, headers=other)).status_code == 404, path
    assert (await client.post(f"/api/v1/orders/{order['id']}/assign", headers=other)).status_code == 404
    declined = await client.post(f"/api/v1/orders/{order['id']}/decline", json={"reason": "x"}, headers=other)
    assert declined.status_code == 404
    assert (await LicenceOrder.select(LicenceOrder.status).first())["status"] == "requested"
    mine = await key_for(tree, scopes=("read", "orders"))
    batch = (await client.post(f"/api/v1/orders/{order['id']}/assign", headers=mine)).json()["batch_id"]
    assert (await client.get(f"/api/v1/batches/{batch}", headers=other)).status_code == 404
    assert (await client.get("/api/v1/allocations", params={"batch_id": batch}, headers=other)).json()["data"] == []
    assert (await client.get("/api/v1/invoices/1", headers=other)).status_code == 404
