"""Fan-out of events to the endpoints that take them, and their delivery.

Each delivery is claimed with a lease, as the e-mail outbox's rows are: a worker
claims a batch of due deliveries with one statement (PostgreSQL workers skip each
other's rows), sends them a few at a time over its one HTTP client (kept-alive
connections), and records the batch's outcomes together in one transaction. A
worker killed before that record leaves the batch due again when the lease runs
out; a batch starts no send that could end after its lease. A message keeps its id and bytes across attempts and
Resend (the receiver dedupes by `webhook-id`); its timestamp and signature are
of the attempt. Retries follow the Standard Webhooks schedule; an endpoint that
has failed for 3 days is switched off and its partner's managers told."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks.webhooks import Webhook

from portal import db
from portal.domain import audit, outbox
from portal.domain.access import Actor
from portal.domain.addresses import refused_address
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.pages import Page, paginate
from portal.domain.webhooks.endpoints import _may_change, get_endpoint
from portal.domain.webhooks.events import TEST_EVENT, data_of_audit, payload
from portal.tables.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEvent

LEASE = timedelta(seconds=60)
TIMEOUT_S = 10.0
AT_ONCE = 10  # requests in flight per worker
# After the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then failed.
RETRY_AFTER = tuple(timedelta(seconds=s) for s in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600))
DISABLE_AFTER = timedelta(days=3)
KEEP_RESPONSE = 1000
RECORD_CHUNK = 1000  # rows an UPDATE records (SQLite sends them as bound values)


# Sends start only while the lease has at least this long left: a send that began
# may take TIMEOUT_S, and the batch's outcomes must be recorded before the lease
# runs out, or another worker could claim the rows and send them again.
LEASE_MARGIN = timedelta(seconds=TIMEOUT_S + 5)


@dataclass(frozen=True)
class Sender:
    """How messages leave: whether private addresses may be reached (a
    development or test install; never a production one) and how many requests
    one worker has in flight. The HTTP client is the worker process's own
    (`new_client`), handed to `deliver_due` with this."""

    allow_private: bool = False
    at_once: int = AT_ONCE


def http_sender(allow_private: bool = False) -> Sender:
    return Sender(allow_private)


def new_client(at_once: int = AT_ONCE) -> aiohttp.ClientSession:
    """The HTTP client of one worker process: opened at its start (in its event
    loop), closed at its end (`close`), its connections kept alive between
    deliveries to an endpoint. aiohttp rather than httpx: it spends a tenth of
    the CPU a request (docs/benchmarks.md, "Webhooks"), and a worker delivering
    a backlog is bound by its CPU, not by the receiver. No cookies are kept:
    a receiver's Set-Cookie must not follow us to the next delivery."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
        connector=aiohttp.TCPConnector(limit=max(100, at_once)),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def fan_out(now: datetime, limit: int = 500) -> int:
    """Events not fanned out yet: their payload written once, and one delivery
    for each active endpoint of a partner above the company that takes the event
    (a test message: its endpoint only). One transaction; two workers never take
    the same event."""
    async with db.write_transaction():
        claimed = await WebhookEvent.raw(
            "UPDATE webhook_event SET fanned_out = {} WHERE id IN (SELECT id FROM webhook_event "
            f"WHERE NOT fanned_out ORDER BY id LIMIT {int(limit)}{db.skip_locked()}) RETURNING id",
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


_CLAIMED = (
    "SELECT d.id, d.attempts, d.endpoint, e.msg_id, e.payload, ep.url, ep.secret, ep.partner, "
    "ep.failing_since FROM {rows} AS d JOIN webhook_event AS e ON e.id = d.event "
    "JOIN webhook_endpoint AS ep ON ep.id = d.endpoint ORDER BY d.id"
)


async def claim(now: datetime, token: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` due deliveries for one worker, each with `token`, a lease and
    one more attempt counted, with what sending them needs. PostgreSQL: one
    statement, skipping rows another worker is claiming; SQLite: the write lock
    first (BEGIN IMMEDIATE), so no other writer comes between choice and claim."""
    due = (
        "UPDATE webhook_delivery SET claim_token = {}, claimed_until = {}, attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM webhook_delivery WHERE status = 'pending' AND next_attempt_at <= {} "
        "AND (claimed_until IS NULL OR claimed_until < {}) "
        f"ORDER BY next_attempt_at, id LIMIT {int(limit)}{db.skip_locked()}) "
    )
    values = (token, now + LEASE, now, now)
    # Two ways, not one statement spelt twice: SQLite has no UPDATE inside a WITH,
    # so it claims, then reads what it claimed, under its one write lock.
    if db.is_postgres():
        claimed = f"WITH claimed AS ({due}RETURNING id, attempts, endpoint, event) "
        return cast(
            "list[dict[str, Any]]", await WebhookDelivery.raw(claimed + _CLAIMED.format(rows="claimed"), *values)
        )
    async with db.write_transaction():
        rows = await WebhookDelivery.raw(due + "RETURNING id", *values)
        if not rows:
            return []
        listed = ", ".join(str(int(row["id"])) for row in rows)
        return cast(
            "list[dict[str, Any]]",
            await WebhookDelivery.raw(_CLAIMED.format(rows=f"(SELECT * FROM webhook_delivery WHERE id IN ({listed}))")),
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
    return None if allow_private else await refused_address(url)


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the HTTP status, or None when nothing was answered
    excerpt: str = ""  # the start of the answer's body
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """The receiver wants nothing more: no retry, and the endpoint goes off."""
        return self.status == 410


async def attempt(
    row: dict[str, Any], client: aiohttp.ClientSession, now: datetime, refused: str | None = None
) -> Outcome:
    """One POST of the row's message, signed for this attempt; `refused`: why it
    may not be sent (its address), in which case nothing is."""
    if refused:
        return Outcome(None, "", refused)
    body = row["payload"].encode()
    headers = signed_headers(row["secret"], row["msg_id"], now, body)
    try:
        async with client.post(row["url"], data=body, headers=headers, allow_redirects=False) as response:
            # Only the start of the answer is kept: a receiver's huge body is not read whole.
            start = await response.content.read(KEEP_RESPONSE * 4)
            return Outcome(response.status, _decoded(start, response.charset)[:KEEP_RESPONSE])
    except (aiohttp.ClientError, TimeoutError) as error:
        return Outcome(None, "", f"{type(error).__name__}: {error}"[:300] or type(error).__name__)


def _decoded(start: bytes, charset: str | None) -> str:
    try:
        return start.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return start.decode("utf-8", errors="replace")


async def deliver_due(now: datetime, sender: Sender, client: aiohttp.ClientSession, limit: int = 100) -> dict[str, int]:
    """Claim up to `limit` due deliveries, send them `sender.at_once` at a time
    over `client`, record what came of them together. "put_back": claimed but not
    sent, because the lease would have run out first; due again at once."""
    token = secrets.token_hex(8)
    lease_ends = time.monotonic() + LEASE.total_seconds()
    rows = await claim(now, token, limit)
    counts = {"delivered": 0, "retrying": 0, "failed": 0, "put_back": 0}
    if not rows:
        return counts
    hosts = {urlsplit(row["url"]).hostname or "": row["url"] for row in rows}
    refusals = dict(
        zip(
            hosts,
            await asyncio.gather(*(_refused_address(url, sender.allow_private) for url in hosts.values())),
            strict=True,
        )
    )
    gate = asyncio.Semaphore(sender.at_once)

    async def one(row: dict[str, Any]) -> Outcome | None:
        async with gate:
            if time.monotonic() > lease_ends - LEASE_MARGIN.total_seconds():
                return None
            return await attempt(row, client, now, refusals[urlsplit(row["url"]).hostname or ""])

    outcomes = await asyncio.gather(*(one(row) for row in rows))
    for name in await _record(list(zip(rows, outcomes, strict=True)), token, now):
        counts[name] += 1
    return counts


def _next_state(row: dict[str, Any], outcome: Outcome) -> str:
    if outcome.ok:
        return "delivered"
    return "retrying" if int(row["attempts"]) <= len(RETRY_AFTER) and not outcome.gone else "failed"


async def _record(results: list[tuple[dict[str, Any], Outcome | None]], token: str, now: datetime) -> list[str]:
    """The batch's outcomes, with one UPDATE for all its rows, and what they say
    of their endpoints, in one transaction. Rows whose claim is no longer this
    worker's (its lease ran out and another took them) are left alone."""
    names: list[str] = []
    values: list[tuple[Any, ...]] = []
    for row, outcome in results:
        if outcome is None:
            names.append("put_back")
            continue
        name = _next_state(row, outcome)
        names.append(name)
        values.append(
            (
                row["id"],
                {"delivered": "delivered", "retrying": "pending", "failed": "failed"}[name],
                outcome.status,
                outcome.excerpt,
                outcome.error or ("" if outcome.ok else f"The endpoint answered HTTP {outcome.status}."),
                now + RETRY_AFTER[int(row["attempts"]) - 1] if name == "retrying" else None,
                now if outcome.ok else None,
            )
        )
    put_back = [row["id"] for row, outcome in results if outcome is None]
    async with db.write_transaction():
        updated: set[int] = set()
        for start in range(0, len(values), RECORD_CHUNK):
            table, bound = db.rows_table(
                ("int", "text", "int", "text", "text", "time", "time"), values[start : start + RECORD_CHUNK]
            )
            changed = await WebhookDelivery.raw(
                "UPDATE webhook_delivery SET status = v.column2, response_status = v.column3, "
                "response_body = v.column4, error = v.column5, "
                "next_attempt_at = COALESCE(v.column6, webhook_delivery.next_attempt_at), "
                "delivered_at = COALESCE(v.column7, webhook_delivery.delivered_at), "
                "last_attempt_at = {}, claim_token = NULL, claimed_until = NULL "
                f"FROM {table} AS v WHERE webhook_delivery.id = v.column1 AND webhook_delivery.claim_token = {{}} "
                "RETURNING webhook_delivery.id",
                now,
                *bound,
                token,
            )
            updated.update(int(r["id"]) for r in changed)
        if put_back:
            # Not sent: the attempt it was counted is taken back.
            await WebhookDelivery.update(
                {
                    WebhookDelivery.attempts: WebhookDelivery.attempts - 1,
                    WebhookDelivery.claim_token: None,
                    WebhookDelivery.claimed_until: None,
                }
            ).where(WebhookDelivery.id.is_in(put_back) & (WebhookDelivery.claim_token == token))
        await _endpoints_health([(row, o) for row, o in results if o is not None and row["id"] in updated], now)
    return names


async def _endpoints_health(results: list[tuple[dict[str, Any], Outcome]], now: datetime) -> None:
    """An endpoint that answered 2xx in the batch is not failing; one that only
    failed is failing since its first failure, and is switched off after failing
    for DISABLE_AFTER, or at once when it answered 410 Gone."""
    by_endpoint: dict[int, list[tuple[dict[str, Any], Outcome]]] = defaultdict(list)
    for row, outcome in results:
        by_endpoint[int(row["endpoint"])].append((row, outcome))
    answering = [e for e, got in by_endpoint.items() if any(o.ok for _, o in got)]
    failing = [e for e in by_endpoint if e not in answering]
    if answering:
        await WebhookEndpoint.update({WebhookEndpoint.failing_since: None}).where(
            WebhookEndpoint.id.is_in(answering) & WebhookEndpoint.failing_since.is_not_null()
        )
    if failing:
        await WebhookEndpoint.update({WebhookEndpoint.failing_since: now}).where(
            WebhookEndpoint.id.is_in(failing) & WebhookEndpoint.failing_since.is_null()
        )
    for endpoint_id, got in by_endpoint.items():
        row, gone = got[0][0], any(o.gone for _, o in got)
        since = row["failing_since"]
        if gone:
            reason = f"Switched off on {now:%d %b %Y}: it answered 410 Gone, asking to be sent nothing more."
        elif endpoint_id not in answering and since is not None and now - _moment(since) >= DISABLE_AFTER:
            reason = f"Switched off on {now:%d %b %Y}: every delivery failed for {DISABLE_AFTER.days} days."
        else:
            continue
        await _switch_off(row, reason, now, gone=gone)


async def _switch_off(row: dict[str, Any], reason: str, now: datetime, *, gone: bool) -> None:
    endpoint = WebhookEndpoint.id == row["endpoint"]
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


async def deliveries(actor: Actor, endpoint_id: int, page: int) -> Page[dict[str, Any]]:
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


async def resend(actor: Actor, endpoint_id: int, delivery_id: int, now: datetime) -> dict[str, Any]:
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
