"""The API's writes that move seats (request, assign, decline an order) sent ten
times at once change the database as sending them once does: with one
Idempotency-Key every answer is the first one's; without one (assign, decline of
one order) one succeeds and nine are refused with 409. "As once does" is measured,
not assumed: the rows each table gains from one request are compared with what
ten at once add, on a twin order. Each engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from portal.domain import entitlements
from portal.domain.access import load_actor
from portal.domain.audit.sentences import SENTENCES
from portal.domain.orders import requests
from portal.piccolo_app import APP_CONFIG
from portal.tables import AuditEntry, Company, LicenceOrder
from portal.web.api_v1 import ApiLimits

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
TIMES = 10


# The embedded app's timers would deliver queued e-mails between two counts:
# what changes the database here must be the requests alone.
pytestmark = pytest.mark.no_timers


@dataclass(frozen=True)
class Write:
    path: str  # {order} is the order acted on
    body: dict | None
    status: int  # the first answer's
    leaves: str | None  # the order's status after it (None: it makes a new order)


WRITES = {
    "request": Write("/api/v1/orders", {"company_id": "{direct}", "quantity": 3, "po_number": "PO-1"}, 201, None),
    "assign": Write("/api/v1/orders/{order}/assign", None, 200, "assigned"),
    "decline": Write("/api/v1/orders/{order}/decline", {"reason": "Order through your PSA"}, 200, "declined"),
}


async def counts(app) -> dict[str, int]:
    """Rows a table, once the jobs the requests queued (in-process without Redis) are through."""
    if hasattr(app.state.jobs, "drain"):
        await app.state.jobs.drain()
    tables = [t._meta.tablename for t in APP_CONFIG.table_classes]
    return {t: (await Company.raw(f"SELECT COUNT(*) AS n FROM {t}"))[0]["n"] for t in tables}


def gained(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {table: after[table] - before[table] for table in before if after[table] != before[table]}


@pytest.fixture
async def twins(app, tree):
    """Two requested orders alike (one for a single request, one for ten at once), and a key that may act."""
    app.state.api_limits = ApiLimits(per_minute=10_000)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    orders = [await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW) for _ in range(2)]
    _, key = await entitlements.create_key(partner, "PSA", NOW, ("read", "orders"))
    return tree, [order["id"] for order in orders], {"Authorization": f"Bearer {key}"}


def call(client, tree, write: Write, order_id: int, headers: dict):
    body = {k: (tree.direct["id"] if v == "{direct}" else v) for k, v in (write.body or {}).items()}
    return client.post(write.path.format(order=order_id), json=body or None, headers=headers)


async def status_of(order_id: int) -> str:
    return (await LicenceOrder.select(LicenceOrder.status).where(LicenceOrder.id == order_id).first())["status"]


@pytest.mark.parametrize("name", WRITES)
async def test_ten_at_once_with_one_idempotency_key_act_once(app, client, twins, name):
    tree, (first, second), headers = twins
    write = WRITES[name]
    before = await counts(app)
    once = await call(client, tree, write, first, headers | {"Idempotency-Key": f"{name}-once"})
    assert once.status_code == write.status, once.text
    by_one = gained(before, await counts(app))
    assert by_one, "one request changed nothing"

    before = await counts(app)
    answers = await asyncio.gather(
        *(call(client, tree, write, second, headers | {"Idempotency-Key": f"{name}-ten"}) for _ in range(TIMES))
    )
    assert [a.status_code for a in answers] == [write.status] * TIMES, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1, "the answers differ"
    assert gained(before, await counts(app)) == by_one
    if write.leaves:
        assert answers[0].json()["id"] == second and await status_of(second) == write.leaves
    again = await call(client, tree, write, second, headers | {"Idempotency-Key": f"{name}-ten"})
    assert (again.status_code, again.json()["id"]) == (write.status, answers[0].json()["id"])


@pytest.mark.parametrize("name", ["assign", "decline"])
async def test_ten_at_once_without_a_key_act_once_and_refuse_nine(app, client, twins, name):
    tree, (first, second), headers = twins
    write = WRITES[name]
    before = await counts(app)
    assert (await call(client, tree, write, first, headers)).status_code == 200
    by_one = gained(before, await counts(app))

    before = await counts(app)
    answers = await asyncio.gather(*(call(client, tree, write, second, headers) for _ in range(TIMES)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * (TIMES - 1), [a.text for a in answers]
    refused = {a.json()["detail"] for a in answers if a.status_code == 409}
    assert refused == {f"This order is already {write.leaves}; it cannot be {write.leaves}."}
    assert gained(before, await counts(app)) == by_one
    assert await status_of(second) == write.leaves


async def test_a_key_sent_again_with_another_request_is_refused(app, client, twins):
    tree, (first, second), headers = twins
    key = headers | {"Idempotency-Key": "psa-7"}
    assert (await call(client, tree, WRITES["assign"], first, key)).status_code == 200
    before = await counts(app)
    for write, order_id in ((WRITES["assign"], second), (WRITES["decline"], second), (WRITES["request"], second)):
        answer = await call(client, tree, write, order_id, key)
        assert answer.status_code == 409 and "another request" in answer.json()["detail"], answer.text
    assert await counts(app) == before and await status_of(second) == "requested"
    marker = (
        await AuditEntry.select(AuditEntry.company, AuditEntry.detail)
        .where(AuditEntry.action == "api.idempotency")
        .first()
    )
    assert marker["company"] == tree.direct["id"]
    said = SENTENCES.sentence("api.idempotency", marker["detail"], "Direct Customer")
    assert said == "Assigned an order through the API with Idempotency-Key 'psa-7'"
