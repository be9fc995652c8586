"""Signed webhooks (migration portal_0022_webhooks; portal/domain/webhooks/ writes and reads them)."""

from __future__ import annotations

from piccolo.columns import Boolean, ForeignKey, Integer, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, User


class WebhookEndpoint(Table, tablename="webhook_endpoint"):
    id: Serial  # see portal/tables.py

    partner = ForeignKey(Company, on_delete=OnDelete.cascade, index=True)
    url = Varchar(length=500)
    description = Varchar(length=200, default="")
    events = Varchar(length=1000, default="")  # event types, comma-separated
    secret = Varchar(length=100)  # whsec_…: signs every message to this endpoint
    active = Boolean(default=True)
    disabled_reason = Varchar(length=300, default="")
    failing_since = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)


class WebhookEvent(Table, tablename="webhook_event"):
    """One message: the same id and bytes go to every endpoint that takes it."""

    id: Serial

    msg_id = Varchar(length=60, unique=True)
    type = Varchar(length=50)
    company = ForeignKey(Company, null=True, on_delete=OnDelete.set_null)
    audit_entry = Integer(null=True, default=None)
    endpoint = Integer(null=True, default=None)  # a test message: this endpoint only
    payload = Text(default="")  # written once, when the event is fanned out
    created_at = Timestamptz(default=TimestamptzNow())
    fanned_out = Boolean(default=False)
    dedupe_key = Varchar(length=120, unique=True)


class WebhookDelivery(Table, tablename="webhook_delivery"):
    id: Serial

    event = ForeignKey(WebhookEvent, on_delete=OnDelete.cascade)
    endpoint = ForeignKey(WebhookEndpoint, on_delete=OnDelete.cascade)
    status = Varchar(length=10, default="pending")  # pending | delivered | failed
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=None)
    claim_token = Varchar(length=40, null=True, default=None)
    claimed_until = Timestamptz(null=True, default=None)
    response_status = Integer(null=True, default=None)
    response_body = Varchar(length=1000, default="")
    error = Varchar(length=300, default="")
    last_attempt_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)


WEBHOOK_TABLES = [WebhookEndpoint, WebhookEvent, WebhookDelivery]
