"""The events a partner's endpoint can take, and how each comes about.

Changes: a trigger on audit_entry (migration portal_0022_webhooks) writes an event
for each audit action of EVENT_OF_ACTION, in the change's own transaction. The
clock: `sweep_batches` writes "batch.ending" 30 and 3 days before a paid batch
ends and "batch.expired" when it has, once each (their dedupe keys). `fan_out`
then turns events into one payload each and one delivery per endpoint that takes
them, set-based."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from portal import db
from portal.tables.webhooks import WebhookEvent

EVENTS: dict[str, str] = {
    "order.requested": "An order is requested",
    "order.assigned": "An order is assigned",
    "order.declined": "An order is declined",
    "licences.allocated": "Licenses are allocated to users",
    "batch.ending": "A batch ends in 30 days, and again in 3 days",
    "batch.expired": "A batch has expired",
    "invoice.issued": "An invoice is issued",
    "invoice.paid": "An invoice is paid",
    "charge.failed": "A card charge failed",
    "subscription.cancelled": "A subscription is cancelled",
    "subscription.lapsed": "A subscription lapsed unpaid",
}
TEST_EVENT = "webhook.test"
# Written by the trigger of migration portal_0022_webhooks, which keeps its own copy
# of this map (a migration imports nothing of the portal); a test holds them equal.
EVENT_OF_ACTION = {
    "order.request": "order.requested",
    "order.assign": "order.assigned",
    "order.decline": "order.declined",
    "licences.allocate": "licences.allocated",
    "imports.apply": "licences.allocated",
    "invoice.issue": "invoice.issued",
    "invoice.paid": "invoice.paid",
    "invoice.charge_declined": "charge.failed",
    "invoice.charge_failed": "charge.failed",
    "subscription.request_cancellation": "subscription.cancelled",
    "subscription.lapse": "subscription.lapsed",
    "subscription.end_unpaid": "subscription.lapsed",
}
ENDING_DAYS = (30, 3)
# The ids an audit entry's detail holds, as the payload names them.
_IDS = ("order", "batch", "invoice", "subscription", "import", "renews_batch")


def payload(event_type: str, at: datetime, data: dict[str, Any]) -> str:
    """The message body: {"type", "timestamp", "data"}, as Standard Webhooks suggests."""
    return json.dumps({"type": event_type, "timestamp": at.isoformat(), "data": data}, separators=(",", ":"))


def data_of_audit(
    detail: dict[str, Any] | str | None, company_id: int | None, company_name: str | None
) -> dict[str, Any]:
    """What a change's event says: the company, and what its audit entry recorded
    (ids, quantities, numbers, reasons), never who did it (a person's name and
    address stay in the portal)."""
    recorded: dict[str, Any] = json.loads(detail or "{}") if isinstance(detail, str) else (detail or {})
    data = {key: value for key, value in recorded.items() if not isinstance(value, dict | list)}
    for key in _IDS:
        if key in data and isinstance(data[key], str) and data[key].isdigit():
            data[key] = int(data[key])
    return {"company": {"id": company_id, "name": company_name}, **data}


async def sweep_batches(now: datetime) -> int:
    """Events for paid batches ending within 30 and 3 days and ended, under the
    wing of an active endpoint that takes them; once each (their dedupe keys)."""
    written = 0
    # A batch announced at 30 days is announced again at 3; one found within 3 days only then.
    lower = (*ENDING_DAYS[1:], 0)
    windows: list[tuple[str, str, datetime, datetime]] = [
        ("batch.ending", f"batch.ending.{days}", now + timedelta(days=low), now + timedelta(days=days))
        for days, low in zip(ENDING_DAYS, lower, strict=True)
    ]
    # Ended within a day: a batch that ended while no endpoint took it is not announced weeks later.
    windows.append(("batch.expired", "batch.expired", now - timedelta(days=1), now))
    for event_type, key, start, end in windows:
        rows = await WebhookEvent.raw(
            "SELECT b.id, b.company, b.seats, b.allocated, b.starts_at, b.ends_at, c.name AS company_name "
            "FROM licence_batch AS b JOIN company AS c ON c.id = b.company JOIN product AS p ON p.id = b.product "
            "WHERE NOT p.is_trial AND b.ends_at > {} AND b.ends_at <= {} AND EXISTS ("
            "SELECT 1 FROM webhook_endpoint AS ep JOIN company AS seller ON seller.id = ep.partner "
            "WHERE ep.active AND c.path LIKE seller.path || '%' "
            "AND (',' || ep.events || ',') LIKE {}) "
            "AND NOT EXISTS (SELECT 1 FROM webhook_event AS e WHERE e.dedupe_key = {} || ':' || b.id)",
            start,
            end,
            f"%,{event_type},%",
            key,
        )
        written += await _insert(event_type, key, rows, now)
    return written


async def _insert(event_type: str, key: str, rows: Iterable[dict[str, Any]], now: datetime) -> int:
    events = [
        WebhookEvent(
            msg_id=f"msg_{secrets.token_hex(12)}",
            type=event_type,
            company=row["company"],
            payload=payload(
                event_type,
                now,
                {
                    "company": {"id": row["company"], "name": row["company_name"]},
                    "batch": row["id"],
                    "seats": row["seats"],
                    "allocated": row["allocated"],
                    "starts_at": db_time(row["starts_at"]),
                    "ends_at": db_time(row["ends_at"]),
                },
            ),
            created_at=now,
            dedupe_key=f"{key}:{row['id']}",
        )
        for row in rows
    ]
    if not events:
        return 0
    async with db.write_transaction():
        written = await WebhookEvent.insert(*events).on_conflict(action="DO NOTHING").returning(WebhookEvent.id)
    return len(written)


def db_time(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else datetime.fromisoformat(str(value)).isoformat()
