"""A partner's webhook endpoints: the URL, the events it takes, the secret that
signs its messages. Partner managers who may change things (not read-only)."""

from __future__ import annotations

import secrets
from base64 import b64encode
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from piccolo.columns import Column

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.addresses import is_private
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.webhooks.events import EVENTS
from portal.tables.webhooks import WebhookEndpoint

MAX_ENDPOINTS = 20
_SECRET_BYTES = 24


def new_secret() -> str:
    return "whsec_" + b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _may_change(actor: Actor) -> None:
    require_partner_manager(actor)
    require(actor, Capability.WEBHOOKS)
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change webhooks.")


def check_url(url: str, *, allow_private: bool) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if not url:
        raise ValidationFailed({"url": "Enter the URL that receives the events."})
    if len(url) > 500:
        raise ValidationFailed({"url": "The URL is longer than 500 characters."})
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationFailed({"url": "Enter a full URL, starting with https://"})
    if parts.username or parts.password:
        raise ValidationFailed({"url": "Leave the user name and password out of the URL."})
    if not allow_private:
        if parts.scheme != "https":
            raise ValidationFailed({"url": "Use https:// so the events cannot be read on the way."})
        if is_private(parts.hostname):
            raise ValidationFailed({"url": "This address is inside a private network; use a public one."})
    return url


def check_events(chosen: list[str]) -> list[str]:
    picked = [event for event in EVENTS if event in set(chosen)]
    if not picked:
        raise ValidationFailed({"events": "Choose at least one event."})
    return picked


async def create(
    actor: Actor, url: str, description: str, events: list[str], now: datetime, *, allow_private: bool
) -> dict[str, Any]:
    _may_change(actor)
    errors: dict[str, str] = {}
    try:
        url = check_url(url, allow_private=allow_private)
    except ValidationFailed as failed:
        errors |= failed.errors
    try:
        events = check_events(events)
    except ValidationFailed as failed:
        errors |= failed.errors
    if errors:
        raise ValidationFailed(errors)
    async with db.write_transaction():
        count = await WebhookEndpoint.count().where(WebhookEndpoint.partner == actor.company_id)
        if count >= MAX_ENDPOINTS:
            raise ValidationFailed({"url": f"A partner has at most {MAX_ENDPOINTS} endpoints; remove one first."})
        row = (
            await WebhookEndpoint.insert(
                WebhookEndpoint(
                    partner=actor.company_id,
                    url=url,
                    description=description.strip()[:200],
                    events=",".join(events),
                    secret=new_secret(),
                    created_at=now,
                    created_by=actor.user_id,
                )
            ).returning(*WebhookEndpoint.all_columns())
        )[0]
        await audit.record(actor, "webhook.create", actor.company_id, now, {"endpoint": row["id"], "url": url})
    return row


async def list_endpoints(actor: Actor) -> list[dict[str, Any]]:
    require_partner_manager(actor)
    rows = await WebhookEndpoint.raw(
        "SELECT ep.*, "
        "(SELECT COUNT(*) FROM webhook_delivery AS d WHERE d.endpoint = ep.id AND d.status = 'failed') AS failed, "
        "(SELECT COUNT(*) FROM webhook_delivery AS d WHERE d.endpoint = ep.id AND d.status = 'pending') AS pending "
        "FROM webhook_endpoint AS ep WHERE ep.partner = {} ORDER BY ep.id",
        actor.company_id,
    )
    return [_described(row) for row in rows]


def _described(row: dict[str, Any]) -> dict[str, Any]:
    row["event_list"] = [event for event in row["events"].split(",") if event]
    row["active"] = bool(row["active"])
    return row


async def get_endpoint(actor: Actor, endpoint_id: int) -> dict[str, Any]:
    """A partner reaches its own endpoints only; another's id is "no such endpoint"."""
    require_partner_manager(actor)
    row = (
        await WebhookEndpoint.objects()
        .where((WebhookEndpoint.id == endpoint_id) & (WebhookEndpoint.partner == actor.company_id))
        .first()
    )
    if row is None:
        raise NotFound("No such endpoint.")
    return _described(row.to_dict())


async def update(
    actor: Actor, endpoint_id: int, description: str, events: list[str], active: bool, now: datetime
) -> dict[str, Any]:
    _may_change(actor)
    await get_endpoint(actor, endpoint_id)
    picked = check_events(events)
    changes: dict[Column | str, Any] = {
        WebhookEndpoint.description: description.strip()[:200],
        WebhookEndpoint.events: ",".join(picked),
        WebhookEndpoint.active: active,
    }
    if active:  # switched on again: its days of failing start over
        changes |= {WebhookEndpoint.disabled_reason: "", WebhookEndpoint.failing_since: None}
    async with db.write_transaction():
        await WebhookEndpoint.update(changes).where(WebhookEndpoint.id == endpoint_id)
        await audit.record(
            actor,
            "webhook.update",
            actor.company_id,
            now,
            {"endpoint": endpoint_id, "active": active, "events": picked},
        )
    return await get_endpoint(actor, endpoint_id)


async def rotate_secret(actor: Actor, endpoint_id: int, now: datetime) -> str:
    _may_change(actor)
    await get_endpoint(actor, endpoint_id)
    secret = new_secret()
    async with db.write_transaction():
        await WebhookEndpoint.update({WebhookEndpoint.secret: secret}).where(WebhookEndpoint.id == endpoint_id)
        await audit.record(actor, "webhook.rotate_secret", actor.company_id, now, {"endpoint": endpoint_id})
    return secret


async def remove(actor: Actor, endpoint_id: int, now: datetime) -> dict[str, Any]:
    _may_change(actor)
    endpoint = await get_endpoint(actor, endpoint_id)
    async with db.write_transaction():
        await WebhookEndpoint.delete().where(WebhookEndpoint.id == endpoint_id)
        await audit.record(
            actor, "webhook.delete", actor.company_id, now, {"endpoint": endpoint_id, "url": endpoint["url"]}
        )
    return endpoint
