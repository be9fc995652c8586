"""Fan-out of events to the endpoints that take them, and their delivery.

Each delivery is claimed with a lease, as the e-mail outbox's rows are: a worker
killed mid-send leaves it due again when the lease runs out; PostgreSQL workers
skip each other's rows. A message keeps its id and bytes across attempts and
Resend (the receiver dedupes by `webhook-id`); its timestamp and signature are
of the attempt. Retries follow the Standard Webhooks schedule; an endpoint that
has failed for 3 days is switched off and its partner's managers told."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from piccolo.columns import Column
from standardwebhooks.webhooks import Webhook

from portal import db
from portal.domain import audit, outbox
from portal.domain.access import Actor
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.pages import Page, paginate
from portal.domain.webhooks.endpoints import _may_change, get_endpoint, is_private
from portal.domain.webhooks.events import TEST_EVENT, data_of_audit, payload
from portal.tables_webhooks import WebhookDelivery, WebhookEndpoint, WebhookEvent

LEASE = timedelta(seconds=60)
TIMEOUT_S = 10.0
AT_ONCE = 10  # requests in flight per worker
# After the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then failed.
RETRY_AFTER = tuple(timedelta(seconds=s) for s in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600))
DISABLE_AFTER = timedelta(days=3)
KEEP_RESPONSE = 1000


@dataclass(frozen=True)
class Sender:
    """How messages leave: the HTTP client and whether private addresses may be
    reached (a development or test install; never a production one)."""

    post: Callable[[str, bytes, dict[str, str]], Awaitable[httpx.Response]]
    allow_private: bool = False


def http_sender(allow_private: bool = False) -> Sender:
    async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
            return await client.post(url, content=body, headers=headers)

    return Sender(post, allow_private)


async def fan_out(now: datetime, limit: int = 500) -> int:
    """Events not fanned out yet: their payload written once, and one delivery
    for each active endpoint of a partner above the company that takes the event
    (a test message: its endpoint only). One transaction; two workers never take
    the same event."""
    skip_locked = " FOR UPDATE SKIP LOCKED" if db.is_postgres() else ""
    async with db.write_transaction():
        claimed = await WebhookEvent.raw(
            "UPDATE webhook_event SET fanned_out = {} WHERE id IN (SELECT id FROM webhook_event "
            f"WHERE NOT fanned_out ORDER BY id LIMIT {int(limit)}{skip_locked}) RETURNING id",
            True,
        )
        ids = [row["id"] for row in claimed]
        if not ids:
            return 0
        listed = ", ".join(str(int(i)) for i in ids)
        unwritten = await WebhookEvent.raw(
            "SELECT e.id, e.type, e.created_at, e.company, c.name AS company_name, a.detail "
            "FROM webhook_event AS e LEFT JOIN company AS c ON c.id = e.company "
            "LEFT JOIN audit_entry AS a ON a.id = e.audit_entry "
            f"WHERE e.id IN ({listed}) AND e.payload = ''"
        )
        for row in unwritten:
            body = payload(
                row["type"],
                _moment(row["created_at"]),
                data_of_audit(row["detail"], row["company"], row["company_name"]),
            )
            await WebhookEvent.update({WebhookEvent.payload: body}).where(WebhookEvent.id == row["id"])
        await WebhookDelivery.raw(
            "INSERT INTO webhook_delivery (event, endpoint, status, attempts, next_attempt_at) "
            "SELECT e.id, ep.id, 'pending', 0, {} FROM webhook_event AS e "
            "JOIN webhook_endpoint AS ep ON ep.active "
            "JOIN company AS seller ON seller.id = ep.partner "
            "LEFT JOIN company AS c ON c.id = e.company "
            f"WHERE e.id IN ({listed}) AND ("
            "  (e.endpoint IS NOT NULL AND ep.id = e.endpoint) OR (e.endpoint IS NULL "
            "   AND c.path LIKE seller.path || '%' AND (',' || ep.events || ',') LIKE '%,' || e.type || ',%')) "
            "ON CONFLICT (event, endpoint) DO NOTHING",
            now,
        )
    return len(ids)


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


async def claim(now: datetime, token: str, limit: int) -> list[dict]:
    skip_locked = " FOR UPDATE SKIP LOCKED" if db.is_postgres() else ""
    async with db.write_transaction():
        rows = await WebhookDelivery.raw(
            "UPDATE webhook_delivery SET claim_token = {}, claimed_until = {}, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM webhook_delivery WHERE status = 'pending' AND next_attempt_at <= {} "
            "AND (claimed_until IS NULL OR claimed_until < {}) "
            f"ORDER BY next_attempt_at, id LIMIT {int(limit)}{skip_locked}) RETURNING id",
            token,
            now + LEASE,
            now,
            now,
        )
        if not rows:
            return []
        listed = ", ".join(str(int(row["id"])) for row in rows)
        return await WebhookDelivery.raw(
            "SELECT d.id, d.attempts, d.endpoint, e.msg_id, e.payload, ep.url, ep.secret, ep.partner, "
            "ep.failing_since FROM webhook_delivery AS d JOIN webhook_event AS e ON e.id = d.event "
            f"JOIN webhook_endpoint AS ep ON ep.id = d.endpoint WHERE d.id IN ({listed}) ORDER BY d.id"
        )


def signed_headers(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
        "user-agent": "LicensePortal-Webhooks/1",
    }


async def _refused_address(url: str, allow_private: bool) -> str | None:
    """Checked at each attempt, after the name is resolved: a public name may be
    pointed at a private address after the endpoint was saved."""
    if allow_private:
        return None
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        return f"The name {host} could not be resolved ({error.strerror or error})."
    if any(is_private(str(info[4][0])) for info in infos):
        return f"{host} resolves to a private address; nothing was sent."
    return None


async def attempt(row: dict, sender: Sender, now: datetime) -> tuple[int | None, str, str]:
    """(HTTP status or None, response excerpt, error)."""
    body = row["payload"].encode()
    if refused := await _refused_address(row["url"], sender.allow_private):
        return None, "", refused
    try:
        response = await sender.post(row["url"], body, signed_headers(row["secret"], row["msg_id"], now, body))
    except httpx.HTTPError as error:
        return None, "", f"{type(error).__name__}: {error}"[:300] or type(error).__name__
    return response.status_code, response.text[:KEEP_RESPONSE], ""


async def deliver_due(now: datetime, sender: Sender, limit: int = 100) -> dict[str, int]:
    token = secrets.token_hex(8)
    rows = await claim(now, token, limit)
    gate = asyncio.Semaphore(AT_ONCE)
    counts = {"delivered": 0, "retrying": 0, "failed": 0}

    async def one(row: dict) -> None:
        async with gate:
            status, excerpt, error = await attempt(row, sender, now)
        counts[await _record(row, token, status, excerpt, error, now)] += 1

    await asyncio.gather(*(one(row) for row in rows))
    return counts


async def _record(row: dict, token: str, status: int | None, excerpt: str, error: str, now: datetime) -> str:
    ok = status is not None and 200 <= status < 300
    gone = status == 410  # the receiver says it wants nothing more: no retry, the endpoint goes off
    attempts = int(row["attempts"])
    outcome = "delivered" if ok else ("retrying" if attempts <= len(RETRY_AFTER) and not gone else "failed")
    changes: dict[Column | str, Any] = {
        WebhookDelivery.status: {"delivered": "delivered", "retrying": "pending", "failed": "failed"}[outcome],
        WebhookDelivery.response_status: status,
        WebhookDelivery.response_body: excerpt,
        WebhookDelivery.error: error or ("" if ok else f"The endpoint answered HTTP {status}."),
        WebhookDelivery.last_attempt_at: now,
        WebhookDelivery.claim_token: None,
        WebhookDelivery.claimed_until: None,
    }
    if ok:
        changes[WebhookDelivery.delivered_at] = now
    elif outcome == "retrying":
        changes[WebhookDelivery.next_attempt_at] = now + RETRY_AFTER[attempts - 1]
    async with db.write_transaction():
        mine = (WebhookDelivery.id == row["id"]) & (WebhookDelivery.claim_token == token)
        updated = await WebhookDelivery.update(changes).where(mine).returning(WebhookDelivery.id)
        if updated:
            await _endpoint_health(row, ok, now, gone=gone)
    return outcome


async def _endpoint_health(row: dict, ok: bool, now: datetime, *, gone: bool = False) -> None:
    endpoint = WebhookEndpoint.id == row["endpoint"]
    if ok:
        await WebhookEndpoint.update({WebhookEndpoint.failing_since: None}).where(
            endpoint & WebhookEndpoint.failing_since.is_not_null()
        )
        return
    await WebhookEndpoint.update({WebhookEndpoint.failing_since: now}).where(
        endpoint & WebhookEndpoint.failing_since.is_null()
    )
    since = row["failing_since"]
    if gone:
        reason = f"Switched off on {now:%d %b %Y}: it answered 410 Gone, asking to be sent nothing more."
    elif since is None or now - _moment(since) < DISABLE_AFTER:
        return
    else:
        reason = f"Switched off on {now:%d %b %Y}: every delivery failed for {DISABLE_AFTER.days} days."
    off = (
        await WebhookEndpoint.update({WebhookEndpoint.active: False, WebhookEndpoint.disabled_reason: reason})
        .where(
            endpoint & (WebhookEndpoint.active == True)  # noqa: E712 (Piccolo builds SQL from ==)
        )
        .returning(WebhookEndpoint.id)
    )
    if not off:
        return
    await audit.record(
        None, "webhook.disable", row["partner"], now, {"endpoint": row["endpoint"], "url": row["url"], "gone": gone}
    )
    await queue_kind(
        "webhook_disabled",
        row["partner"],
        await outbox.managers_of(row["partner"]),
        {"url": row["url"], "reason": reason, "endpoint_id": row["endpoint"]},
        now,
        f"webhook_disabled:{row['endpoint']}:{now:%Y-%m-%d}",
    )


async def deliveries(actor: Actor, endpoint_id: int, page: int) -> Page:
    await get_endpoint(actor, endpoint_id)
    where = WebhookDelivery.endpoint == endpoint_id
    select = (
        WebhookDelivery.select(
            *WebhookDelivery.all_columns(),
            WebhookDelivery.event.type.as_alias("type"),
            WebhookDelivery.event.msg_id.as_alias("msg_id"),
            WebhookDelivery.event.created_at.as_alias("event_at"),
        )
        .where(where)
        .order_by(WebhookDelivery.id, ascending=False)
    )
    return await paginate(select, WebhookDelivery.count().where(where), page)


async def resend(actor: Actor, endpoint_id: int, delivery_id: int, now: datetime) -> dict:
    """The same message again (same id and bytes), now, with a fresh count of attempts."""
    _may_change(actor)
    endpoint = await get_endpoint(actor, endpoint_id)
    if not endpoint["active"]:
        raise ValidationFailed({"delivery": "Switch the endpoint on before resending to it."})
    async with db.write_transaction():
        done = (
            await WebhookDelivery.update(
                {
                    WebhookDelivery.status: "pending",
                    WebhookDelivery.attempts: 0,
                    WebhookDelivery.next_attempt_at: now,
                    WebhookDelivery.claim_token: None,
                    WebhookDelivery.claimed_until: None,
                }
            )
            .where(
                (WebhookDelivery.id == delivery_id)
                & (WebhookDelivery.endpoint == endpoint_id)
                & (WebhookDelivery.status != "pending")
            )
            .returning(WebhookDelivery.id)
        )
        if not done:
            exists = await WebhookDelivery.exists().where(
                (WebhookDelivery.id == delivery_id) & (WebhookDelivery.endpoint == endpoint_id)
            )
            if not exists:
                raise NotFound("No such delivery.")
            raise ValidationFailed({"delivery": "This message is waiting to be sent already."})
        await audit.record(
            actor, "webhook.resend", actor.company_id, now, {"endpoint": endpoint_id, "delivery": delivery_id}
        )
    return endpoint


async def send_test(actor: Actor, endpoint_id: int, now: datetime) -> str:
    """A "webhook.test" message to this endpoint only; its id."""
    _may_change(actor)
    endpoint = await get_endpoint(actor, endpoint_id)
    msg_id = f"msg_{secrets.token_hex(12)}"
    body = payload(TEST_EVENT, now, {"endpoint": endpoint_id, "message": "A test message from the License Portal."})
    async with db.write_transaction():
        await WebhookEvent.insert(
            WebhookEvent(
                msg_id=msg_id,
                type=TEST_EVENT,
                endpoint=endpoint["id"],
                payload=body,
                created_at=now,
                dedupe_key=f"test:{msg_id}",
            )
        )
    return msg_id
