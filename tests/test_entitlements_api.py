from __future__ import annotations

import re
from datetime import timedelta

from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions, requests
from tests.factories import add_user
from tests.support import post_form, sign_in


async def create_key(client, tree, who: str = "partner") -> str:
    await sign_in(client, tree.email(who))
    page = await post_form(
        client, "/settings/api-keys", "/settings/api-keys", {"name": "Training platform", "scopes": "read"}
    )
    assert page.status_code == 201
    return re.search(r'value="(lp_[^"]+)"', page.text).group(1)


async def test_entitlement_answers_for_users_under_the_keys_partner(client, tree):
    learner = await add_user(tree.north, "learner@north.example", role="learner")
    await add_user(tree.other_customer, "stranger@other.example", role="learner")
    customer = await load_actor(tree.managers["north"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    now = utcnow()
    order = await requests.request_order(customer, tree.north["id"], 1, None, "", now - timedelta(days=1))
    batch = await decisions.assign_order(partner, order["id"], now - timedelta(days=1))
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(learner["id"],)), now)
    key = await create_key(client, tree)
    client.cookies.clear()
    auth = {"Authorization": f"Bearer {key}"}

    ok = await client.get("/api/v1/entitlements/Learner@North.example", headers=auth)
    assert ok.status_code == 200
    body = ok.json()
    assert body["status"] == "active" and body["licensed"] is True
    assert body["product"].startswith("Security Awareness Training") and body["ends_at"].startswith(
        batch["ends_at"].isoformat()[:19]
    )
    manager = (await client.get(f"/api/v1/entitlements/{tree.email('north')}", headers=auth)).json()
    assert manager["status"] == "unlicensed" and manager["licensed"] is False
    for outside in ("stranger@other.example", "nobody@north.example", "not-an-email"):
        response = await client.get(f"/api/v1/entitlements/{outside}", headers=auth)
        assert response.status_code == 404 and response.headers["content-type"].startswith("application/json")


async def test_entitlements_need_a_live_key(client, tree):
    key = await create_key(client, tree)
    assert (await client.get("/api/v1/entitlements/a@b.example")).status_code == 401
    bad = await client.get("/api/v1/entitlements/a@b.example", headers={"Authorization": "Bearer lp_wrong"})
    assert bad.status_code == 401 and "API key" in bad.json()["detail"]
    page = await client.get("/settings/api-keys")
    key_id = re.search(r"/settings/api-keys/(\d+)/revoke", page.text).group(1)
    await post_form(client, "/settings/api-keys", f"/settings/api-keys/{key_id}/revoke", {})
    client.cookies.clear()
    revoked = await client.get("/api/v1/entitlements/a@b.example", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 401


async def test_a_sub_partners_key_sees_only_its_wing(client, tree):
    await add_user(tree.direct, "direct@direct.example", role="learner")
    key = await create_key(client, tree, "sub")
    client.cookies.clear()
    response = await client.get(
        "/api/v1/entitlements/direct@direct.example", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 404


async def test_the_api_is_in_the_openapi_schema_and_pages_are_not(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/entitlements/{email}" in schema["paths"]
    assert "partnerKey" in schema["components"]["securitySchemes"]
    assert not any(path.startswith("/companies") for path in schema["paths"])


async def test_customer_managers_have_no_api_keys(client, tree):
    await sign_in(client, tree.email("north"))
    assert (await client.get("/settings/api-keys")).status_code == 403
