"""Receivables: what the customers under a partner's wing still owe, and how late.

An invoice is outstanding while it is issued and unpaid (a void one is owed by
nobody). Days overdue are whole calendar days (UTC) from its due date to today:
due today is 0 days overdue, due yesterday 1. The ageing puts each outstanding
invoice in one bucket by those days:

    Current   not yet due (the due date is after today)
    0–30      due today up to 30 days ago
    31–60     31 to 60 days past the due date
    61–90     61 to 90 days past
    90+       91 days or more past

A bucket is a range of due instants (day boundaries worked out here from `now`),
so the database compares timestamps and never does date arithmetic, which SQLite
and PostgreSQL spell differently: one GROUP BY query, the same on both engines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.custom_types import Combinable
from piccolo.query import Select
from piccolo.query.functions import Case, Count, Max, Sum, When

from portal.domain.access import Actor, under_wing
from portal.domain.billing.invoices import INVOICE_FILTERS
from portal.domain.filters import day_start
from portal.tables.billing import Invoice, InvoiceStatus

OUTSTANDING = InvoiceStatus.ISSUED


@dataclass(frozen=True)
class Bucket:
    key: str
    label: str
    # Days overdue, both ends included; None: open-ended.
    least: int | None
    most: int | None


BUCKETS = (
    Bucket("current", "Current", None, -1),
    Bucket("days_0_30", "0–30 days", 0, 30),
    Bucket("days_31_60", "31–60 days", 31, 60),
    Bucket("days_61_90", "61–90 days", 61, 90),
    Bucket("days_over_90", "90+ days", 91, None),
)


def days_overdue(due_at: datetime | None, now: datetime) -> int | None:
    """Calendar days (UTC) from the due date to `now`'s day; negative before it, None without one."""
    if due_at is None:
        return None
    return (now.astimezone(UTC).date() - due_at.astimezone(UTC).date()).days


def bucket_of(days: int) -> Bucket:
    return next(b for b in BUCKETS if (b.least is None or days >= b.least) and (b.most is None or days <= b.most))


def _due_before_overdue(days: int, now: datetime) -> datetime:
    """The instant from which an invoice is fewer than `days` days overdue:
    due_at < it ⟺ days_overdue(due_at, now) >= days."""
    return day_start(now.astimezone(UTC).date() - timedelta(days=days - 1))


def _in_bucket(bucket: Bucket, now: datetime) -> Combinable:
    ends: list[Combinable] = []
    if bucket.least is not None:
        ends.append(Invoice.due_at < _due_before_overdue(bucket.least, now))
    if bucket.most is not None:
        ends.append(Invoice.due_at >= _due_before_overdue(bucket.most + 1, now))
    condition = ends[0]
    for end in ends[1:]:
        condition &= end
    return condition


def _outstanding_where(actor: Actor, filters: Mapping[str, Any]) -> Combinable:
    """The invoice list's filters (under the actor's wing), narrowed to what is unpaid."""
    where = INVOICE_FILTERS.where(filters, under_wing(actor, Invoice.company_path))
    return where & (Invoice.status == OUTSTANDING)


async def outstanding_totals(actor: Actor, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the invoices of the filtered list still owe: per currency (a partner's
    sub-partners may sell in others), "total_cents" and "invoices", by currency."""
    rows = (
        await Invoice.select(
            Invoice.currency,
            Sum(Invoice.total_cents, alias="total_cents"),
            Count(Invoice.id, alias="invoices"),
        )
        .where(_outstanding_where(actor, filters))
        .group_by(Invoice.currency)
        .order_by(Invoice.currency)
    )
    return [{**row, "total_cents": int(row["total_cents"])} for row in rows]


def ageing_query(actor: Actor, filters: Mapping[str, Any], now: datetime) -> Select[Any]:
    """The ageing's one statement, not yet run (`ageing` runs it; the benchmark prints its plan)."""
    buckets = [
        Sum(Case(When(_in_bucket(bucket, now), Invoice.total_cents), default=0), alias=bucket.key) for bucket in BUCKETS
    ]
    # Grouped by ids only (a hash of a few thousand groups, not a sort of every unpaid
    # invoice); a customer has one name and one seller, so MAX just carries them.
    return (
        Invoice.select(
            Invoice.company,
            Max(Invoice.company.name, alias="customer"),
            Max(Invoice.partner.name, alias="seller"),
            Invoice.currency,
            *buckets,
            Sum(Invoice.total_cents, alias="total_cents"),
            Count(Invoice.id, alias="invoices"),
        )
        .where(_outstanding_where(actor, filters))
        .group_by(Invoice.company, Invoice.currency)
    )


async def ageing(actor: Actor, filters: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """One row per customer and currency that owes anything: "company", "customer",
    "seller", "currency", a sum in cents per bucket (its key), "total_cents" and
    "invoices"; by customer name. One statement, whatever the number of invoices."""
    rows = await ageing_query(actor, filters, now)
    rows.sort(key=lambda row: (row["customer"], row["company"], row["currency"]))
    for row in rows:  # SUM of bigints is a Decimal on PostgreSQL (numeric), an int on SQLite
        for key in (*(b.key for b in BUCKETS), "total_cents"):
            row[key] = int(row[key] or 0)
    return rows
