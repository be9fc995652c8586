"""The wing's batches: ending soon, assigned or ending between two dates (the
forecast's bars), each described as a person says it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.dashboard.figures import SOON, db_datetime
from portal.domain.dashboard.kept import Kept
from portal.domain.errors import ValidationFailed
from portal.domain.licences.plans import name_by_plan
from portal.domain.licences.status import EXPIRING_WITHIN
from portal.domain.pages import PER_PAGE, Page, clamp_page
from portal.tables import LicenceBatch


def ends_in_words(ends_at: datetime, now: datetime) -> str:
    """ "in 2 days", "in 5 hours", "ended 3 days ago": what a person says, not a timestamp."""
    delta = ends_at - now
    ahead = delta.total_seconds() > 0
    seconds = abs(delta.total_seconds())
    if seconds < 3600:
        amount = "less than an hour"
    elif seconds < 2 * 86400:
        hours = int(seconds // 3600)
        amount = f"{hours} hour{'' if hours == 1 else 's'}"
    else:
        days = int(seconds // 86400)
        amount = f"{days} days"
    return f"in {amount}" if ahead else f"ended {amount} ago"


# Batches under the wing, with their customer, product and their renewal: the order
# that renews the batch (licence_order.renews_batch), once assigned (renewed_at, and
# the end of the batch it made) or while it waits for Assign. An order that renews
# nothing never marks a batch renewed, however close in time it was assigned. A batch
# of a running subscription's term (ending at its term end) renews with the subscription.
_BATCHES_SQL = """
SELECT licence_batch.id, licence_batch.seats, licence_batch.allocated, licence_batch.starts_at,
  licence_batch.ends_at, licence_batch."order" AS order_id, company.id AS company_id, company.name AS company_name,
  licence_batch.product AS product_id, product.name AS product_name, product.is_trial,
  (SELECT MIN(r.decided_at) FROM licence_order AS r
    WHERE r.renews_batch = licence_batch.id AND r.status = 'assigned') AS renewed_at,
  (SELECT MIN(nb.ends_at) FROM licence_order AS r JOIN licence_batch AS nb ON nb."order" = r.id
    WHERE r.renews_batch = licence_batch.id AND r.status = 'assigned') AS renewed_until,
  (SELECT MIN(r.requested_at) FROM licence_order AS r
    WHERE r.renews_batch = licence_batch.id AND r.status = 'requested') AS renewal_requested_at,
  EXISTS (SELECT 1 FROM subscription AS s WHERE s.company = licence_batch.company
    AND s.term_end = licence_batch.ends_at AND s.status = 'active' AND s.auto_renew) AS subscription_term{total}
FROM licence_batch
JOIN company ON company.id = licence_batch.company
JOIN product ON product.id = licence_batch.product
WHERE {} AND {}
"""
_BATCHES_TOTAL = ",\n  COUNT(*) OVER () AS total"
_BATCHES_SQL = _BATCHES_SQL.replace("{total}", _BATCHES_TOTAL)
BATCH_FIELDS = ("ends_at", "starts_at")


async def batches_between(
    actor: Actor, field: str, start: datetime, end: datetime, now: datetime, page: int = 1
) -> Page[dict[str, Any]]:
    """The wing's batches whose `field` (ends_at: ending; starts_at: assigned)
    falls in [start, end): the list behind a bar of the forecast."""
    require_partner_manager(actor)
    if field not in BATCH_FIELDS:
        raise ValidationFailed({"field": "Choose ending or assigned."})
    column = getattr(LicenceBatch, field)
    within = (column >= start) & (column < end)
    number = clamp_page(page)
    order = "ASC" if field == "ends_at" else "DESC"
    sql = (
        _BATCHES_SQL
        + f" ORDER BY licence_batch.{field} {order}, licence_batch.id LIMIT {PER_PAGE} OFFSET {(number - 1) * PER_PAGE}"
    )
    rows = await LicenceBatch.raw(sql, under_wing(actor).querystring, within.querystring)
    total = (
        rows[0]["total"]
        if rows
        else await LicenceBatch.count().where(within & under_wing(actor, LicenceBatch.company.path))
    )
    await name_by_plan(rows)
    return Page(items=[describe_batch(row, now) for row in rows], total=total, number=number)


async def ending_soon(
    actor: Actor, now: datetime, limit: int = 10, kept: Kept | None = None, version: str = ""
) -> tuple[list[dict[str, Any]], bool]:
    """The wing's first `limit` batches that end within 30 days, the soonest
    first, and whether more follow (not how many: counting them all cost more
    than the page's customer table).

    Read as the first `limit` + 1 batches ending after now, whatever their end,
    and cut at 30 days here: those rows stay the same until the first of them
    ends, so with `kept` and the wing's `version` (figures.Listing) they are
    read again only then or when the version changes."""
    require_partner_manager(actor)
    key = ("ending_soon", actor.company_path, version, limit)
    rows = kept.get(key, now) if kept is not None and version else None
    if rows is None:
        sql = _BATCHES_SQL.replace(_BATCHES_TOTAL, "")
        rows = await LicenceBatch.raw(
            sql + f" ORDER BY licence_batch.ends_at, licence_batch.id LIMIT {int(limit) + 1}",
            under_wing(actor).querystring,
            (LicenceBatch.ends_at > now).querystring,
        )
        await name_by_plan(rows)
        if kept is not None and version:
            kept.put(key, rows, rows[0]["ends_at"] if rows else None)
    soon = [dict(row) for row in rows if row["ends_at"] <= now + SOON]
    return [describe_batch(row, now) for row in soon[:limit]], len(soon) > limit


def batch_label(batch: dict[str, Any], now: datetime) -> str:
    """A batch as a person recognises it, never by its id: "12 seats, assigned
    23 Nov 2026, ends 23 Nov 2027"."""
    seats = f"{batch['seats']:,} seat{'' if batch['seats'] == 1 else 's'}"
    ends = "ends" if batch["ends_at"] > now else "ended"
    return f"{seats}, assigned {batch['starts_at']:%d %b %Y}, {ends} {batch['ends_at']:%d %b %Y}"


def describe_batch(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    for moment in ("renewed_at", "renewed_until", "renewal_requested_at"):
        row[moment] = db_datetime(row.get(moment))
    row["subscription_term"] = bool(row.get("subscription_term"))  # SQLite answers EXISTS with 0 or 1
    row["running"] = row["starts_at"] <= now < row["ends_at"]
    # Seats of a batch that ended (or has not started) are not free to give.
    row["free"] = row["seats"] - row["allocated"] if row["running"] else 0
    row["label"] = batch_label(row, now)
    row["ends_in"] = ends_in_words(row["ends_at"], now)
    row["soon"] = row["running"] and row["ends_at"] - now <= EXPIRING_WITHIN
    row["renewable"] = renewable(row, now)
    return row


def renewable(batch: dict[str, Any], now: datetime) -> bool:
    """ "Renew same quantity" is offered on a paid batch that ends within 30 days
    (or ended within them), that no order renews yet (assigned or waiting) and
    that is not a running subscription's term (which renews with it)."""
    return (
        not batch["is_trial"]
        and not batch.get("subscription_term")
        and batch.get("renewed_at") is None
        and batch.get("renewal_requested_at") is None
        and abs(batch["ends_at"] - now) <= SOON
    )
