"""Signed webhooks to a partner's systems: events made in the change's transaction
(from audit entries) and from batches' ends, fanned out to the endpoints of the
partners above the company, delivered over real HTTP to a receiver on loopback,
verified with the `standardwebhooks` package; retries, switching off, Resend,
tenants, and ten workers at once. Each engine."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.orders import decisions, requests
from portal.domain.webhooks import delivery, endpoints, events
from portal.tables import AuditEntry, OutboxEmail
from portal.tables.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.factories import add_user
from tests.support import csrf_of, post_form, sign_in

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
SENDER = delivery.http_sender(allow_private=True)
NOTHING = {"delivered": 0, "retrying": 0, "failed": 0, "put_back": 0}


class Receiver:
    """A real HTTP server on loopback that keeps what it is sent and answers `status`."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections open, as a real receiver does

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(
                    {
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "from": self.client_address,
                    }
                )
                answer = b"" if receiver.status == 204 else b"thanks" if receiver.status < 300 else b"broken"
                self.send_response(receiver.status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
async def http():
    """The worker process's HTTP client, as portal/jobs/worker.py opens it."""
    async with delivery.new_client() as client:
        yield client


async def partner_of(tree, key: str = "partner"):
    return await load_actor(tree.managers[key]["id"], None)


async def endpoint_for(actor, url: str, chosen: list[str] | None = None) -> dict:
    return await endpoints.create(actor, url, "PSA", chosen or list(events.EVENTS), NOW, allow_private=True)


async def order_and_assign(tree, company_key: str = "direct", seats: int = 5, now: datetime = NOW) -> dict:
    partner = await partner_of(tree)
    order = await requests.request_order(partner, tree.__dict__[company_key]["id"], seats, None, "PO-7", now)
    await decisions.assign_order(partner, order["id"], now)
    return order


async def send_all(http, now: datetime = NOW) -> dict[str, int]:
    await delivery.fan_out(now)
    return await delivery.deliver_due(now, SENDER, http)


async def test_a_change_reaches_the_partner_signed_and_verifiable(tree, receiver, http):
    endpoint = await endpoint_for(await partner_of(tree), receiver.url)
    now = utcnow()  # the receiver checks the message's timestamp against its own clock
    order = await order_and_assign(tree, now=now)
    assert await send_all(http, now) == {**NOTHING, "delivered": 2}
    assert sorted(json.loads(r["body"])["type"] for r in receiver.received) == ["order.assigned", "order.requested"]
    for message in receiver.received:
        verified = Webhook(endpoint["secret"]).verify(message["body"], message["headers"])
        assert verified["data"]["company"] == {"id": tree.direct["id"], "name": "Direct Customer"}
        assert verified["data"]["order"] == order["id"]
        assert message["headers"]["webhook-id"].startswith("msg_")
    by_type = {json.loads(r["body"])["type"]: r for r in receiver.received}
    assert json.loads(by_type["order.requested"]["body"])["data"]["quantity"] == 5
    assert all(b"manager@" not in r["body"] for r in receiver.received)  # who did it stays in the portal
    assigned = by_type["order.assigned"]
    tampered = assigned["body"].replace(b'"seats":5', b'"seats":50')
    assert tampered != assigned["body"]
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint["secret"]).verify(tampered, assigned["headers"])
    assert await send_all(http, now) == NOTHING  # nothing twice


async def test_only_the_partners_above_the_company_and_only_the_events_chosen(tree, receiver, http):
    other = Receiver()
    sub = Receiver()
    try:
        await endpoint_for(await partner_of(tree), receiver.url, ["order.assigned"])
        await endpoint_for(await partner_of(tree, "other"), other.url)
        await endpoint_for(await partner_of(tree, "sub"), sub.url)
        await order_and_assign(tree, "direct")
        await order_and_assign(tree, "north")
        await send_all(http)
        assert sorted(json.loads(r["body"])["data"]["company"]["name"] for r in receiver.received) == [
            "Direct Customer",
            "North Customer",
        ]
        assert {json.loads(r["body"])["type"] for r in receiver.received} == {"order.assigned"}
        assert [json.loads(r["body"])["data"]["company"]["name"] for r in sub.received] == ["North Customer"] * 2
        assert other.received == []
    finally:
        other.close()
        sub.close()


async def test_no_endpoint_no_event(tree):
    await order_and_assign(tree)
    assert await WebhookEvent.count() == 0


async def test_a_failing_endpoint_is_retried_with_the_same_message_then_switched_off(tree, receiver, http):
    endpoint = await endpoint_for(await partner_of(tree), receiver.url, ["order.requested"])
    partner = await partner_of(tree)
    await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW)
    receiver.status = 500
    assert (await send_all(http))["retrying"] == 1
    row = await WebhookDelivery.objects().first()
    assert (row.status, row.attempts, row.response_status) == ("pending", 1, 500)
    assert row.next_attempt_at == NOW + delivery.RETRY_AFTER[0]
    assert (await delivery.deliver_due(NOW + timedelta(seconds=1), SENDER, http))["retrying"] == 0  # not due yet
    later = NOW + timedelta(seconds=6)
    receiver.status = 200
    assert (await delivery.deliver_due(later, SENDER, http))["delivered"] == 1
    first, second = receiver.received
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] and first["body"] == second["body"]
    assert first["headers"]["webhook-timestamp"] != second["headers"]["webhook-timestamp"]
    assert (await WebhookEndpoint.objects().first()).failing_since is None

    # Failing from day 0: still on at 2 days, switched off after 3, its partner's managers told once.
    receiver.status = 503
    await requests.request_order(partner, tree.direct["id"], 4, None, "", NOW)
    for days in (0, 2, 4):
        await WebhookDelivery.update({WebhookDelivery.next_attempt_at: NOW}).where(WebhookDelivery.status == "pending")
        await send_all(http, NOW + timedelta(days=days))
    stored = await WebhookEndpoint.objects().where(WebhookEndpoint.id == endpoint["id"]).first()
    assert not stored.active and "3 days" in stored.disabled_reason
    mails = await OutboxEmail.select().where(OutboxEmail.kind == "webhook_disabled")
    assert [m["to_email"] for m in mails] == [tree.managers["partner"]["email"]]
    assert await AuditEntry.count().where(AuditEntry.action == "webhook.disable") == 1
    await requests.request_order(partner, tree.direct["id"], 2, None, "", NOW)
    assert await WebhookEvent.count().where(WebhookEvent.fanned_out == False) == 0  # noqa: E712 (no endpoint active)


async def test_an_endpoint_that_answers_410_gone_is_switched_off_at_once(tree, receiver, http):
    endpoint = await endpoint_for(await partner_of(tree), receiver.url, ["order.requested"])
    partner = await partner_of(tree)
    await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW)
    receiver.status = 410
    assert (await send_all(http))["failed"] == 1
    stored = await WebhookEndpoint.objects().where(WebhookEndpoint.id == endpoint["id"]).first()
    assert not stored.active and "410 Gone" in stored.disabled_reason
    assert await OutboxEmail.count().where(OutboxEmail.kind == "webhook_disabled") == 1
    await requests.request_order(partner, tree.direct["id"], 4, None, "", NOW)
    await send_all(http)
    assert len(receiver.received) == 1  # nothing more


async def test_resend_sends_the_same_message_again(tree, receiver, http):
    endpoint = await endpoint_for(await partner_of(tree), receiver.url, ["order.requested"])
    partner = await partner_of(tree)
    await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW)
    await send_all(http)
    row = await WebhookDelivery.objects().first()
    with pytest.raises(NotFound):
        await delivery.resend(await partner_of(tree, "other"), endpoint["id"], row.id, NOW)
    await delivery.resend(partner, endpoint["id"], row.id, NOW)
    with pytest.raises(ValidationFailed):
        await delivery.resend(partner, endpoint["id"], row.id, NOW)  # waiting already
    await send_all(http)
    assert len(receiver.received) == 2 and receiver.received[0]["body"] == receiver.received[1]["body"]


async def test_ten_workers_at_once_send_each_message_once(tree, receiver, http):
    await endpoint_for(await partner_of(tree), receiver.url, ["order.requested"])
    partner = await partner_of(tree)
    for n in range(12):
        await requests.request_order(partner, tree.direct["id"], n + 1, None, "", NOW)
    await asyncio.gather(*(delivery.fan_out(NOW) for _ in range(10)))
    assert await WebhookDelivery.count() == 12
    await asyncio.gather(*(delivery.deliver_due(NOW, SENDER, http, limit=3) for _ in range(10)))
    ids = [r["headers"]["webhook-id"] for r in receiver.received]
    assert len(ids) == 12 and len(set(ids)) == 12


async def test_a_batch_goes_over_kept_alive_connections_and_is_recorded_together(tree, receiver, http):
    await endpoint_for(await partner_of(tree), receiver.url, ["order.requested"])
    partner = await partner_of(tree)
    for n in range(12):
        await requests.request_order(partner, tree.direct["id"], n + 1, None, "", NOW)
    await delivery.fan_out(NOW)
    two_at_once = delivery.Sender(allow_private=True, at_once=2)
    assert await delivery.deliver_due(NOW, two_at_once, http) == {**NOTHING, "delivered": 12}
    assert len({r["from"] for r in receiver.received}) <= 2  # connections reused, not one a message
    rows = await WebhookDelivery.select().where(WebhookDelivery.status == "delivered")
    assert len(rows) == 12 and {(r["attempts"], r["claim_token"], r["response_status"]) for r in rows} == {
        (1, None, 204)
    }
    assert {r["delivered_at"] for r in rows} == {NOW}


async def test_a_batch_that_would_outlast_its_lease_sends_nothing_late_and_gives_the_rest_back(
    tree, receiver, http, monkeypatch
):
    await endpoint_for(await partner_of(tree), receiver.url, ["order.requested"])
    partner = await partner_of(tree)
    for n in range(3):
        await requests.request_order(partner, tree.direct["id"], n + 1, None, "", NOW)
    monkeypatch.setattr(delivery, "LEASE", delivery.LEASE_MARGIN)  # no time left to start a send
    assert await send_all(http) == {**NOTHING, "put_back": 3}
    assert receiver.received == []
    rows = await WebhookDelivery.select()
    assert {(r["status"], r["attempts"], r["claim_token"]) for r in rows} == {("pending", 0, None)}
    monkeypatch.undo()
    assert await send_all(http) == {**NOTHING, "delivered": 3}  # due again at once


async def test_one_batch_for_two_endpoints_records_each_its_own_way(tree, receiver, http):
    partner = await partner_of(tree)
    gone = Receiver()
    try:
        gone.status = 410
        kept = await endpoint_for(partner, receiver.url, ["order.requested"])
        dropped = await endpoint_for(partner, gone.url, ["order.requested"])
        await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW)
        assert await send_all(http) == {**NOTHING, "delivered": 1, "failed": 1}
    finally:
        gone.close()
    on = {e.id: e for e in await WebhookEndpoint.objects()}
    assert on[kept["id"]].active and on[kept["id"]].failing_since is None
    assert not on[dropped["id"]].active and "410 Gone" in on[dropped["id"]].disabled_reason
    assert await AuditEntry.count().where(AuditEntry.action == "webhook.disable") == 1


async def test_batches_ending_and_expired_once_each(tree, receiver, http):
    await endpoint_for(await partner_of(tree), receiver.url, ["batch.ending", "batch.expired"])
    order = await order_and_assign(tree)  # its order events are not chosen: never sent
    ends = NOW + timedelta(days=365)
    for days_before in (40, 20, 20, 2, 2):
        await events.sweep_batches(ends - timedelta(days=days_before))
    await events.sweep_batches(ends + timedelta(hours=1))
    await events.sweep_batches(ends + timedelta(hours=2))
    await send_all(http, ends + timedelta(hours=2))
    sent = [json.loads(r["body"]) for r in receiver.received]
    assert sorted(m["type"] for m in sent) == ["batch.ending", "batch.ending", "batch.expired"]  # sent 10 at once
    assert all(m["data"]["seats"] == order["quantity"] for m in sent)


async def test_endpoint_rules(tree):
    partner = await partner_of(tree)
    for url, word in [
        ("ftp://x.example/h", "https://"),
        ("http://psa.example.com/h", "https://"),
        ("https://127.0.0.1/h", "private"),
        ("https://10.1.2.3/h", "private"),
        ("https://localhost/h", "private"),
        ("https://user:pw@psa.example.com/h", "password"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            await endpoints.create(partner, url, "", ["order.assigned"], NOW, allow_private=False)
        assert word in refused.value.errors["url"]
    with pytest.raises(ValidationFailed) as refused:
        await endpoints.create(partner, "https://psa.example.com/h", "", ["nope"], NOW, allow_private=False)
    assert "events" in refused.value.errors
    customer = await load_actor(tree.managers["direct"]["id"], None)
    with pytest.raises(PermissionDenied):
        await endpoints.create(customer, "https://psa.example.com/h", "", ["order.assigned"], NOW, allow_private=False)
    reader = await add_user(tree.partner, "reader@acme.example", role="read_only")
    with pytest.raises(PermissionDenied):
        await endpoints.create(
            await load_actor(reader["id"], None), "https://psa.example.com/h", "", ["order.assigned"], NOW,
            allow_private=False,
        )  # fmt: skip
    mine = await endpoints.create(
        partner, "https://psa.example.com/h", "", ["order.assigned"], NOW, allow_private=False
    )
    with pytest.raises(NotFound):
        await endpoints.get_endpoint(await partner_of(tree, "other"), mine["id"])


async def test_a_name_that_resolves_to_a_private_address_is_not_sent_to(tree, receiver, http):
    partner = await partner_of(tree)
    await endpoints.create(partner, receiver.url.replace("127.0.0.1", "localhost"), "", ["order.requested"], NOW,
                           allow_private=True)  # fmt: skip
    await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW)
    await delivery.fan_out(NOW)
    assert (await delivery.deliver_due(NOW, delivery.http_sender(allow_private=False), http))["retrying"] == 1
    row = await WebhookDelivery.objects().first()
    assert "private address" in row.error and receiver.received == []


def test_the_trigger_knows_every_event_of_an_action():
    migration = Path(__file__).parent.parent / "portal" / "piccolo_migrations" / "portal_0022_webhooks.py"
    namespace: dict = {}
    source = migration.read_text()
    exec(source[source.index("EVENT_OF_ACTION = {") : source.index("}\n", source.index("EVENT_OF_ACTION")) + 2],
         namespace)  # fmt: skip
    assert namespace["EVENT_OF_ACTION"] == events.EVENT_OF_ACTION
    assert set(events.EVENT_OF_ACTION.values()) <= set(events.EVENTS)


async def test_the_pages(client, tree, receiver):
    await sign_in(client, tree.managers["partner"]["email"])
    page = await client.get("/settings/webhooks")
    assert page.status_code == 200 and "No endpoints yet." in page.text
    data = {"url": receiver.url, "description": "PSA <b>sync</b>", "events": ["order.requested", "order.assigned"]}
    created = await post_form(client, "/settings/webhooks", "/settings/webhooks", data)
    assert created.status_code == 400 and "Use https://" in created.text  # the test app sends to public hosts only
    assert receiver.url in created.text  # what was typed stays
    data["url"] = "https://psa.example.com/hooks"
    created = await post_form(client, "/settings/webhooks", "/settings/webhooks", data)
    assert created.status_code == 201
    secret = re.search(r'value="(whsec_[^"]+)"', created.text).group(1)
    assert "PSA &lt;b&gt;sync&lt;/b&gt;" in created.text
    endpoint = await WebhookEndpoint.objects().first()
    assert endpoint.secret == secret and endpoint.events == "order.requested,order.assigned"
    again = await client.get("/settings/webhooks")
    assert secret not in again.text  # shown once
    detail = await client.get(f"/settings/webhooks/{endpoint.id}")
    assert detail.status_code == 200 and "Nothing sent yet." in detail.text
    tested = await post_form(client, f"/settings/webhooks/{endpoint.id}", f"/settings/webhooks/{endpoint.id}/test", {})
    assert tested.status_code in (302, 303)
    assert await WebhookEvent.count().where(WebhookEvent.endpoint == endpoint.id) == 1
    await sign_in(client, tree.managers["other"]["email"])
    assert (await client.get(f"/settings/webhooks/{endpoint.id}")).status_code == 404
    opened = await client.get("/settings/webhooks")
    delivery_id = (await WebhookDelivery.select(WebhookDelivery.id).first() or {"id": 1})["id"]
    for action in ("", "/test", "/rotate-secret", "/delete", f"/deliveries/{delivery_id}/resend"):
        refused = await client.post(
            f"/settings/webhooks/{endpoint.id}{action}",
            data={"_csrf_token": csrf_of(opened.text), "events": "order.assigned", "active": "on"},
        )
        assert refused.status_code == 404, action
    stored = await WebhookEndpoint.objects().first()
    assert (stored.secret, stored.events) == (secret, "order.requested,order.assigned")
    assert await WebhookEvent.count().where(WebhookEvent.endpoint == endpoint.id) == 1
    await sign_in(client, tree.managers["direct"]["email"])
    assert (await client.get("/settings/webhooks")).status_code == 403
