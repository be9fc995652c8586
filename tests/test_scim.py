"""SCIM 2.0 provisioning at /scim/v2: scim2-tester's compliance checks, the
request shapes Entra ID and Okta send, tokens that reach one company only, and
seats that follow users in and out."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from scim2_client import BaseSyncSCIMClient
from scim2_tester import Status, check_server

from portal import db
from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.orders import decisions, requests
from portal.domain.scim import tokens
from portal.tables import Allocation, AuditEntry, LicenceBatch, User
from portal.tables.scim import ScimUser
from tests.factories import add_user
from tests.support import post_form, sign_in

SCIM = "/scim/v2"
SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _token(tree, company: str = "north") -> str:
    actor = await load_actor(tree.managers[company]["id"], None)
    _, token = await tokens.create_token(actor, getattr(tree, company)["id"], "Entra ID", utcnow())
    return token


async def _seats(tree, company: str = "north", seats: int = 5) -> dict:
    customer = await load_actor(tree.managers[company]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    now = utcnow() - timedelta(days=1)
    order = await requests.request_order(customer, getattr(tree, company)["id"], seats, None, "", now)
    return await decisions.assign_order(partner, order["id"], now)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}


def _new_user(user_name: str, email: str | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": user_name, **extra}
    if email:
        body["emails"] = [{"value": email, "type": "work", "primary": True}]
    return body


async def _allocated(batch_id: int) -> int:
    return (await LicenceBatch.select(LicenceBatch.allocated).where(LicenceBatch.id == batch_id).first())["allocated"]


class _HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client's request interface over httpx, which the portal already uses."""

    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        url = self.client.build_request("GET", endpoint).url
        base = self.client.base_url
        return url.scheme == base.scheme and url.netloc == base.netloc and url.path.startswith(base.path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, **kwargs)


async def test_scim2_tester_finds_nothing_to_fault(app, tree):
    """The whole suite of scim2-tester (discovery, create, read, attributes,
    replace, delete, PATCH add/replace/remove of every attribute), over HTTP."""
    token = await _token(tree)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)

    def run_checks() -> list:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}{SCIM}", headers={"Authorization": f"Bearer {token}"}
        ) as http:
            return check_server(_HttpxSCIMClient(http), raise_exceptions=False)

    try:
        results = await anyio.to_thread.run_sync(run_checks)
    finally:
        server.should_exit = True
        await serving
    failed = [f"{r.title}: {r.reason}" for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    assert failed == []
    assert sum(r.status == Status.SUCCESS for r in results) > 20


async def test_a_user_created_takes_a_free_seat_and_active_false_frees_it(client, tree):
    batch = await _seats(tree)
    token = await _token(tree)
    created = await client.post(
        f"{SCIM}/Users",
        headers=_auth(token),
        json=_new_user("ann@north.example", "ann@north.example", name={"givenName": "Ann", "familyName": "Lee"}),
    )
    assert created.status_code == 201 and created.headers["content-type"].startswith(SCIM_JSON)
    assert "set-cookie" not in created.headers  # no session, no CSRF cookie: a bearer token only
    body = created.json()
    assert body["userName"] == "ann@north.example" and "active" not in body  # unassigned: active
    assert created.headers["location"].endswith(f"/scim/v2/Users/{body['id']}")
    user = await User.select().where(User.email == "ann@north.example").first()
    assert user["name"] == "Ann Lee" and user["role"] == "learner" and user["company"] == tree.north["id"]
    assert await _allocated(batch["id"]) == 1

    # Entra ID: capitalised op, "False" as a string.
    off = await client.patch(
        f"{SCIM}/Users/{body['id']}",
        headers=_auth(token),
        json={"schemas": [PATCH_SCHEMA], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
    )
    assert off.status_code == 200 and off.json()["active"] is False
    assert await _allocated(batch["id"]) == 0
    assert not (await User.select(User.active).where(User.id == user["id"]).first())["active"]
    assert await AuditEntry.exists().where(AuditEntry.action == "user.deactivate")

    on = await client.patch(
        f"{SCIM}/Users/{body['id']}",
        headers=_auth(token),
        json={"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": True}}]},
    )
    assert on.status_code == 200 and on.json()["active"] is True
    assert await _allocated(batch["id"]) == 1


async def test_entra_id_request_shapes(client, tree):
    token = await _token(tree)
    found = await client.get(f"{SCIM}/Users", headers=_auth(token), params={"filter": 'userName eq "Bo@North.example"'})
    assert found.status_code == 200 and found.json()["totalResults"] == 0 and found.json()["Resources"] == []
    entra = {
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "bo",
        "userName": "Bo@North.example",
        "active": True,
        "displayName": "Bo Berg",
        "title": "Engineer",
        "emails": [{"primary": True, "type": "work", "value": "bo@north.example"}],
        "name": {"formatted": "Bo Berg", "familyName": "Berg", "givenName": "Bo"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops"},
    }
    created = await client.post(f"{SCIM}/Users", headers=_auth(token), json=entra)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    found = await client.get(f"{SCIM}/Users", headers=_auth(token), params={"filter": 'userName eq "bo@north.example"'})
    assert [r["id"] for r in found.json()["Resources"]] == [user_id]
    by_external = await client.get(f"{SCIM}/Users", headers=_auth(token), params={"filter": 'externalId eq "bo"'})
    assert by_external.json()["totalResults"] == 1

    patched = await client.patch(
        f"{SCIM}/Users/{user_id}",
        headers=_auth(token),
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "bo.berg@north.example"},
                {"op": "Replace", "path": "displayName", "value": "Bo B. Berg"},
                {"op": "Add", "path": "title", "value": "Lead"},
                {
                    "op": "Replace",
                    "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                    "value": "IT",
                },
            ],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["emails"][0]["value"] == "bo.berg@north.example"
    user = await User.select(User.email, User.name).where(User.id == int(user_id)).first()
    assert user == {"email": "bo.berg@north.example", "name": "Bo B. Berg"}

    # A duplicate create: 409 with scimType uniqueness.
    again = await client.post(f"{SCIM}/Users", headers=_auth(token), json=entra)
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    assert again.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


async def test_okta_request_shapes(client, tree):
    token = await _token(tree)
    okta = {
        "schemas": [USER_SCHEMA],
        "userName": "cy@north.example",
        "name": {"givenName": "Cy", "familyName": "Dane"},
        "emails": [{"primary": True, "value": "cy@north.example", "type": "work"}],
        "displayName": "Cy Dane",
        "locale": "en-US",
        "externalId": "00u1",
        "groups": [],
        "password": "not-kept-1!",
        "active": True,
    }
    created = await client.post(f"{SCIM}/Users", headers=_auth(token), json=okta)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    page = await client.get(
        f"{SCIM}/Users",
        headers=_auth(token),
        params={"filter": 'userName eq "cy@north.example"', "startIndex": 1, "count": 2},
    )
    assert page.json()["Resources"][0]["id"] == user_id and page.json()["itemsPerPage"] == 1
    # Okta replaces the whole user with PUT, and turns users off with PATCH active false.
    replaced = await client.put(
        f"{SCIM}/Users/{user_id}",
        headers=_auth(token),
        json={**okta, "name": {"givenName": "Cyra", "familyName": "Dane"}, "displayName": None},
    )
    assert replaced.status_code == 200, replaced.text
    assert (await User.select(User.name).where(User.id == int(user_id)).first())["name"] == "Cyra Dane"
    off = await client.patch(
        f"{SCIM}/Users/{user_id}",
        headers=_auth(token),
        json={"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert off.json()["active"] is False


async def test_pages_of_users(client, tree):
    token = await _token(tree)
    for n in range(5):
        assert (
            await client.post(f"{SCIM}/Users", headers=_auth(token), json=_new_user(f"p{n}@north.example"))
        ).status_code == 201
    first = (await client.get(f"{SCIM}/Users", headers=_auth(token), params={"count": 2})).json()
    second = (await client.get(f"{SCIM}/Users", headers=_auth(token), params={"count": 2, "startIndex": 3})).json()
    assert first["totalResults"] == 5 and first["itemsPerPage"] == 2 and second["startIndex"] == 3
    assert {r["userName"] for r in first["Resources"]}.isdisjoint({r["userName"] for r in second["Resources"]})
    bad = await client.get(f"{SCIM}/Users", headers=_auth(token), params={"filter": 'title co "x"'})
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidFilter"


async def test_a_token_reaches_only_its_company(client, tree):
    stranger = await add_user(tree.other_customer, "stranger@other.example", role="learner")
    neighbour = await add_user(tree.direct, "neighbour@direct.example", role="learner")
    own = await add_user(tree.north, "own@north.example", role="learner")
    token = await _token(tree)
    for user in (stranger, neighbour):
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            body = (
                {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": False}]}
                if method == "PATCH"
                else _new_user("x@x.example", "x@x.example")
            )
            answer = await client.request(
                method,
                f"{SCIM}/Users/{user['id']}",
                headers=_auth(token),
                json=body if method in ("PUT", "PATCH") else None,
            )
            assert answer.status_code == 404 and answer.json()["status"] == "404", (method, answer.text)
    listed = (await client.get(f"{SCIM}/Users", headers=_auth(token))).json()
    assert [r["userName"] for r in listed["Resources"]] == ["own@north.example"] and listed["Resources"][0][
        "id"
    ] == str(own["id"])
    assert (await User.select(User.active).where(User.id == stranger["id"]).first())["active"] is True
    # A manager of the company is not a SCIM user either.
    manager = await client.get(f"{SCIM}/Users/{tree.managers['north']['id']}", headers=_auth(token))
    assert manager.status_code == 404


async def test_no_token_a_wrong_one_or_a_revoked_one_is_refused(client, tree):
    token = await _token(tree)
    assert (await client.get(f"{SCIM}/Users")).status_code == 401
    wrong = await client.get(f"{SCIM}/Users", headers=_auth("scim_wrong"))
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    assert wrong.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    actor = await load_actor(tree.managers["north"]["id"], None)
    listed = await tokens.list_tokens(actor, tree.north["id"])
    await tokens.revoke_token(actor, tree.north["id"], listed[0]["id"], utcnow())
    assert (await client.get(f"{SCIM}/Users", headers=_auth(token))).status_code == 401


@pytest.mark.parametrize("attempts", [10])
async def test_the_same_create_ten_times_at_once_makes_one_user_and_takes_one_seat(client, tree, attempts):
    batch = await _seats(tree)
    token = await _token(tree)
    body = _new_user("dee@north.example", "dee@north.example")
    answers = await asyncio.gather(
        *(client.post(f"{SCIM}/Users", headers=_auth(token), json=body) for _ in range(attempts))
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * (attempts - 1)
    assert await User.count().where(User.email == "dee@north.example") == 1
    assert await _allocated(batch["id"]) == 1


async def test_one_username_sent_ten_times_at_once_with_other_addresses_makes_one_user(client, tree):
    token = await _token(tree)
    bodies = [_new_user("kim@north.example", f"kim{i}@north.example") for i in range(10)]
    answers = await asyncio.gather(*(client.post(f"{SCIM}/Users", headers=_auth(token), json=b) for b in bodies))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9
    assert {a.json()["scimType"] for a in answers if a.status_code == 409} == {"uniqueness"}
    assert await User.count().where(User.email.like("kim%@north.example")) == 1
    assert await ScimUser.count().where(ScimUser.user_name_key == "kim@north.example") == 1


async def test_a_deleted_user_created_again_ten_times_at_once_comes_back_once(client, tree):
    batch = await _seats(tree)
    token = await _token(tree)
    body = _new_user("lou@north.example", "lou@north.example")
    first = await client.post(f"{SCIM}/Users", headers=_auth(token), json=body)
    assert (await client.delete(f"{SCIM}/Users/{first.json()['id']}", headers=_auth(token))).status_code == 204
    answers = await asyncio.gather(*(client.post(f"{SCIM}/Users", headers=_auth(token), json=body) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9
    assert {a.json()["id"] for a in answers if a.status_code == 201} == {first.json()["id"]}
    assert await User.count().where(User.email == "lou@north.example") == 1
    assert await _allocated(batch["id"]) == 1


async def test_a_created_user_holds_a_seat_to_the_batchs_end_and_is_counted_once(client, tree):
    batch = await _seats(tree)
    token = await _token(tree)
    created = await client.post(f"{SCIM}/Users", headers=_auth(token), json=_new_user("fay@north.example"))
    assert created.status_code == 201
    user = await User.select().where(User.email == "fay@north.example").first()
    seats = await Allocation.select().where(Allocation.user == user["id"])
    assert [(s["batch"], s["ends_at"], s["released_at"]) for s in seats] == [(batch["id"], batch["ends_at"], None)]
    assert user["licence_ends_at"] == batch["ends_at"] and await _allocated(batch["id"]) == 1
    tally = await User.raw(
        "SELECT ends_at, users FROM licence_tally WHERE company = {} AND users <> 0", tree.north["id"]
    )
    assert [row["users"] for row in tally if db.as_datetime(row["ends_at"]) == batch["ends_at"]] == [1]
    assert await ScimUser.count().where(ScimUser.portal_user == user["id"]) == 1
    entries = await AuditEntry.select(AuditEntry.action, AuditEntry.detail, AuditEntry.actor).where(
        AuditEntry.action.is_in(["user.create_learner", "licences.allocate"])
    )
    actor = tree.managers["north"]["id"]
    assert sorted((e["action"], json.loads(e["detail"]), e["actor"]) for e in entries) == [
        ("licences.allocate", {"batch": batch["id"], "renewed": 1, "selected": 1}, actor),
        ("user.create_learner", {"email": "fay@north.example"}, actor),
    ]


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.mark.parametrize(
    "body",
    [
        {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "externalId": "gus",
            "userName": "  Gus@North.example ",
            "active": True,
            "displayName": "Gus Gold",
            "title": "Analyst",
            "emails": [{"primary": True, "type": "work", "value": "GUS@North.Example"}],
            "name": {"formatted": "Gus Gold", "familyName": "Gold", "givenName": "Gus"},
            ENTERPRISE: {"department": "Ops", "employeeNumber": "7"},
        },
        {"schemas": [USER_SCHEMA], "userName": "hal@north.example", "name": {"givenName": "Hal"}},
        {"schemas": [USER_SCHEMA], "userName": "ida@north.example", "active": False, "password": "not-kept-1A!"},
    ],
    ids=["entra", "okta-minimal", "inactive-with-password"],
)
async def test_a_create_answers_what_a_read_of_the_user_gives(client, tree, body):
    token = await _token(tree)
    created = await client.post(f"{SCIM}/Users", headers=_auth(token), json=body)
    assert created.status_code == 201, created.text
    read = await client.get(f"{SCIM}/Users/{created.json()['id']}", headers=_auth(token))
    assert created.json() == read.json()
    assert "password" not in created.text


@pytest.mark.parametrize("params", ["attributes=userName,emails", "excludedAttributes=emails,name"])
async def test_a_create_with_chosen_attributes_answers_what_a_read_with_them_gives(client, tree, params):
    token = await _token(tree)
    body = _new_user("jo@north.example", "jo@north.example", name={"givenName": "Jo"}, displayName="Jo Jones")
    created = await client.post(f"{SCIM}/Users?{params}", headers=_auth(token), json=body)
    assert created.status_code == 201, created.text
    read = await client.get(f"{SCIM}/Users/{created.json()['id']}?{params}", headers=_auth(token))
    assert created.json() == read.json()
    whole = await client.get(f"{SCIM}/Users/{created.json()['id']}", headers=_auth(token))
    assert created.json() != whole.json()


async def test_creates_at_once_take_the_free_seats_and_no_more(client, tree):
    batch = await _seats(tree, seats=3)
    token = await _token(tree)
    answers = await asyncio.gather(
        *(client.post(f"{SCIM}/Users", headers=_auth(token), json=_new_user(f"p{i}@north.example")) for i in range(10))
    )
    assert [a.status_code for a in answers] == [201] * 10
    assert await _allocated(batch["id"]) == 3
    assert await Allocation.count().where(Allocation.batch == batch["id"]) == 3
    assert await User.count().where(User.email.like("p%@north.example") & User.licence_ends_at.is_not_null()) == 3


async def test_errors_are_scim_error_bodies(client, tree):
    token = await _token(tree)
    for method, path, body in (
        ("GET", "/Nothing", None),
        ("POST", "/ServiceProviderConfig", {}),
        ("GET", "/Users/abc", None),
        ("POST", "/Users", {"schemas": [USER_SCHEMA]}),
        ("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "not an address"}),
    ):
        answer = await client.request(method, SCIM + path, headers=_auth(token), json=body)
        assert answer.status_code in (400, 404, 405) and answer.headers["content-type"].startswith(SCIM_JSON), path
        assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and answer.json()["detail"]
    raw = await client.post(f"{SCIM}/Users", headers=_auth(token), content=b"{not json")
    assert raw.status_code == 400 and raw.json()["scimType"] == "invalidValue"


async def test_the_company_page_creates_lists_and_revokes_tokens(client, tree):
    await sign_in(client, tree.email("north"))
    page = await client.get(f"/companies/{tree.north['id']}")
    assert "SCIM provisioning" in page.text and "No tokens yet." in page.text
    created = await post_form(
        client, f"/companies/{tree.north['id']}", f"/companies/{tree.north['id']}/scim-tokens", {"name": "Entra ID"}
    )
    assert created.status_code == 201 and "it is not shown again" in created.text
    token = re.search(r'value="(scim_[^"]+)"', created.text).group(1)
    assert "/scim/v2" in created.text
    assert (await client.get(f"{SCIM}/Users", headers=_auth(token))).status_code == 200
    page = await client.get(f"/companies/{tree.north['id']}")
    assert "Entra ID" in page.text and token not in page.text
    token_id = re.search(rf"/companies/{tree.north['id']}/scim-tokens/(\d+)/revoke", page.text).group(1)
    revoked = await post_form(
        client, f"/companies/{tree.north['id']}", f"/companies/{tree.north['id']}/scim-tokens/{token_id}/revoke", {}
    )
    assert revoked.status_code in (302, 303)
    page = await client.get(f"/companies/{tree.north['id']}")
    assert "is revoked" in page.text and "Revoked" in page.text
    assert await AuditEntry.count().where(AuditEntry.action.is_in(["scim_token.create", "scim_token.revoke"])) == 2


async def test_partners_manage_tokens_only_in_manage_mode(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get(f"/companies/{tree.north['id']}")
    assert "SCIM provisioning" not in page.text
    await post_form(client, f"/companies/{tree.north['id']}", f"/companies/{tree.north['id']}/manage", {})
    page = await client.get(f"/companies/{tree.north['id']}")
    assert "SCIM provisioning" in page.text
    other = await post_form(
        client, f"/companies/{tree.north['id']}", f"/companies/{tree.direct['id']}/scim-tokens", {"name": "x"}
    )
    assert other.status_code == 404
