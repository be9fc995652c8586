"""What needs doing, at a glance: the partner's customers with their licence
figures, a customer's own summary, batches ending soon and "Renew same quantity".

The partner dashboard is one grouped statement over licence_tally (a few rows
per customer, see docs/architecture.md), licence_batch and licence_order, for
every customer under the wing at once, so it can sort and page 2,000 customers
by any figure without a query per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from portal import db
from portal.domain import catalogue, orders
from portal.domain.access import Actor, get_company, require_partner_manager, under_wing
from portal.domain.errors import ValidationFailed
from portal.domain.licences import EXPIRING_WITHIN, tab_counts
from portal.domain.pages import PER_PAGE, Page, clamp_page
from portal.tables import Company, LicenceBatch, LicenceOrder

SOON = timedelta(days=30)
# Sortable figures, as the SQL names them; numbers sort largest first unless asked otherwise.
SORTS = ("name", "expired", "expiring_72h", "expiring_30d", "free", "pending", "waiting")
DEFAULT_SORT = "expired"
DEFAULT_ALERT_BELOW = 0  # "low on seats": free seats at most this, with learners waiting


@dataclass(frozen=True)
class CustomerQuery:
    """Search, sort and page of the customer table; `alert_below` is the partner's
    threshold for the low free-seat alert; `alerts_only` keeps the alerted rows."""

    q: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = True
    page: int = 1
    alert_below: int = DEFAULT_ALERT_BELOW
    alerts_only: bool = False


# One statement: the wing's customers, their figures, their count for the pager.
# The wing's prefix is a checked literal (access.under_wing); the clock and the
# search are bound; the ORDER BY, LIMIT and OFFSET are ours, written in.
# Each figure's subquery joins company itself rather than a shared CTE of the
# wing: PostgreSQL has no statistics for a materialised CTE, guessed the joins
# at 1.9 million rows for 2,000, and spent 70 ms compiling the query with JIT.
_CUSTOMERS_SQL = """
WITH tally AS (
  SELECT licence_tally.company,
    SUM(CASE WHEN licence_tally.ends_at <= {} THEN licence_tally.users ELSE 0 END) AS expired,
    SUM(CASE WHEN licence_tally.ends_at > {} AND licence_tally.ends_at <= {} THEN licence_tally.users ELSE 0 END)
      AS expiring_72h,
    SUM(CASE WHEN licence_tally.ends_at > {} AND licence_tally.ends_at <= {} THEN licence_tally.users ELSE 0 END)
      AS expiring_30d,
    SUM(CASE WHEN licence_tally.ends_at IS NULL THEN licence_tally.users ELSE 0 END) AS unlicensed
  FROM licence_tally JOIN company ON company.id = licence_tally.company
  WHERE {} AND (licence_tally.ends_at IS NULL OR licence_tally.ends_at <= {})
  GROUP BY licence_tally.company
),
seats AS (
  SELECT licence_batch.company, SUM(licence_batch.seats - licence_batch.allocated) AS free,
    MIN(licence_batch.ends_at) AS next_end
  FROM licence_batch JOIN company ON company.id = licence_batch.company
  WHERE {} AND licence_batch.starts_at <= {} AND licence_batch.ends_at > {}
  GROUP BY licence_batch.company
),
pending AS (
  SELECT licence_order.company, COUNT(*) AS pending FROM licence_order
  WHERE licence_order.status = 'requested' AND {}
  GROUP BY licence_order.company
),
figures AS (
  SELECT company.id, company.name,
    COALESCE(tally.expired, 0) AS expired, COALESCE(tally.expiring_72h, 0) AS expiring_72h,
    COALESCE(tally.expiring_30d, 0) AS expiring_30d, COALESCE(tally.unlicensed, 0) AS unlicensed,
    COALESCE(tally.expired, 0) + COALESCE(tally.unlicensed, 0) AS waiting,
    COALESCE(seats.free, 0) AS free, seats.next_end, COALESCE(pending.pending, 0) AS pending
  FROM company
  LEFT JOIN tally ON tally.company = company.id
  LEFT JOIN seats ON seats.company = company.id
  LEFT JOIN pending ON pending.company = company.id
  WHERE company.kind = 'customer' AND {} AND {}
),
alerted AS (
  SELECT figures.*, CASE WHEN figures.free <= {} AND figures.waiting > 0 THEN 1 ELSE 0 END AS alert FROM figures
)
SELECT alerted.*, COUNT(*) OVER () AS total, SUM(alerted.alert) OVER () AS alerts FROM alerted
"""


async def customer_figures(actor: Actor, query: CustomerQuery, now: datetime) -> tuple[Page, int]:
    """One page of the wing's customers with expired, expiring (72 h, 30 days),
    unlicensed and waiting users, free seats of running batches, pending
    requests and the low-seat alert; and how many customers are alerted."""
    require_partner_manager(actor)
    sort = query.sort if query.sort in SORTS else DEFAULT_SORT
    direction = "DESC" if query.descending else "ASC"
    search = db.contains("company.name", query.q.strip()) if query.q.strip() else Company.id.is_not_null()
    number = clamp_page(query.page)
    sql = _CUSTOMERS_SQL + (" WHERE alerted.alert = 1" if query.alerts_only else "")
    sql += f" ORDER BY alerted.{sort} {direction}, alerted.name, alerted.id"
    sql += f" LIMIT {PER_PAGE} OFFSET {(number - 1) * PER_PAGE}"
    wing = under_wing(actor).querystring
    rows = await Company.raw(
        sql,
        now,
        now,
        now + EXPIRING_WITHIN,
        now,
        now + SOON,
        wing,
        now + SOON,  # users whose seat runs past 30 days count in no figure
        wing,
        now,
        now,
        under_wing(actor, LicenceOrder.company_path).querystring,
        wing,
        search.querystring,
        int(query.alert_below),
    )
    if rows:
        total, alerts = rows[0]["total"], int(rows[0]["alerts"] or 0)
    else:  # a page past the end (or nothing matches): count alone
        total, alerts = await _count_only(actor, query, now)
    for row in rows:
        row["alert"] = bool(row["alert"])
        row["next_end"] = db_datetime(row["next_end"])
    return Page(items=rows, total=total, number=number), alerts


async def _count_only(actor: Actor, query: CustomerQuery, now: datetime) -> tuple[int, int]:
    everything = CustomerQuery(q=query.q, alert_below=query.alert_below, alerts_only=query.alerts_only, page=1)
    page, alerts = await customer_figures(actor, everything, now) if query.page > 1 else (Page([], 0, 1), 0)
    return page.total, alerts


def db_datetime(value):
    """An aggregate's timestamp: SQLite hands MIN(ends_at) back as the text it stores."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


# --- batches ending soon, in words -------------------------------------------------


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


# Batches under the wing, with their customer, product and whether a later one renewed them:
# a batch of the same product assigned since the bound given (now - 30 days). Renewal is
# offered only within 30 days of a batch's end, so a batch assigned before that window
# (a second batch for more users, months ago) is not its renewal.
_BATCHES_SQL = """
SELECT licence_batch.id, licence_batch.seats, licence_batch.allocated, licence_batch.starts_at,
  licence_batch.ends_at, company.id AS company_id, company.name AS company_name,
  licence_batch.product AS product_id, product.name AS product_name, product.is_trial,
  (SELECT MIN(later.starts_at) FROM licence_batch AS later
    WHERE later.company = licence_batch.company AND later.product = licence_batch.product
      AND later.starts_at > licence_batch.starts_at AND later.ends_at > licence_batch.ends_at
      AND later.starts_at >= {}) AS renewed_at,
  COUNT(*) OVER () AS total
FROM licence_batch
JOIN company ON company.id = licence_batch.company
JOIN product ON product.id = licence_batch.product
WHERE {} AND {}
"""
BATCH_FIELDS = ("ends_at", "starts_at")


async def batches_between(
    actor: Actor, field: str, start: datetime, end: datetime, now: datetime, page: int = 1
) -> Page:
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
    rows = await LicenceBatch.raw(sql, now - SOON, under_wing(actor).querystring, within.querystring)
    total = (
        rows[0]["total"]
        if rows
        else await LicenceBatch.count().where(within & under_wing(actor, LicenceBatch.company.path))
    )
    return Page(items=[describe_batch(row, now) for row in rows], total=total, number=number)


def describe_batch(row: dict, now: datetime) -> dict:
    row["renewed_at"] = db_datetime(row.get("renewed_at"))
    row["free"] = row["seats"] - row["allocated"]
    row["running"] = row["starts_at"] <= now < row["ends_at"]
    row["ends_in"] = ends_in_words(row["ends_at"], now)
    row["soon"] = row["running"] and row["ends_at"] - now <= EXPIRING_WITHIN
    row["renewable"] = renewable(row, now)
    return row


def renewable(batch: dict, now: datetime) -> bool:
    """ "Renew same quantity" is offered on a paid batch that ends within 30 days
    (or ended within them) and that no later batch of its product has renewed."""
    return not batch["is_trial"] and batch.get("renewed_at") is None and abs(batch["ends_at"] - now) <= SOON


# --- "Renew same quantity" -----------------------------------------------------------


async def renewal_offer(actor: Actor, batch_id: int, now: datetime) -> dict:
    """What renewing a batch at the same quantity will do: customer, quantity,
    product and the new batch's end if assigned now. Refuses what is not renewable."""
    rows = await LicenceBatch.raw(
        _BATCHES_SQL + " LIMIT 1",
        now - SOON,
        (Company.id.is_not_null()).querystring,
        (LicenceBatch.id == batch_id).querystring,
    )
    # Through get_company: a batch outside the wing answers NotFound like any other id.
    company = await get_company(actor, rows[0]["company_id"] if rows else 0)
    batch = describe_batch(rows[0], now)
    if batch["is_trial"]:
        raise ValidationFailed({"batch": "A Free trial is not renewed as it is: request Premium licences instead."})
    if batch["renewed_at"] is not None:
        raise ValidationFailed({"batch": f"This batch was already renewed on {batch['renewed_at']:%d %b %Y}."})
    if abs(batch["ends_at"] - now) > SOON:
        raise ValidationFailed({"batch": "Renew same quantity is for batches that end within 30 days."})
    product = await catalogue.product(batch["product_id"])
    assert product is not None, "a batch's product is a foreign key"
    pending = await LicenceOrder.count().where(
        (LicenceOrder.company == company["id"]) & (LicenceOrder.status == "requested")
    )
    return {
        **batch,
        "company": company,
        "product": product,
        "quantity": batch["seats"],
        "new_ends_at": catalogue.term_end(product, now),
        "pending": pending,
        "assigns": actor.is_partner_manager,
    }


async def renew_same_quantity(actor: Actor, batch_id: int, now: datetime) -> dict:
    """Places the order for the batch's quantity of the same product: a request
    (status Requested), and for a partner manager assigned at once, in one
    transaction. Returns the offer, the order and the new batch (None if only requested)."""
    first = await renewal_offer(actor, batch_id, now)
    async with db.write_transaction():
        # Under the company's write lock, and asked again: of two clicks, the second finds it renewed.
        await db.for_update(Company.select(Company.id).where(Company.id == first["company"]["id"]))
        offer = await renewal_offer(actor, batch_id, now)
        if offer["pending"] and not actor.is_partner_manager:
            raise ValidationFailed({"batch": "A request of this company is already waiting for Assign."})
        order = await orders.request_order(
            actor, offer["company"]["id"], offer["quantity"], offer["product_id"], "", now
        )
        new_batch = await orders.assign_order(actor, order["id"], now) if actor.is_partner_manager else None
    return {"order": order, "batch": new_batch, "offer": offer}


# --- the customer's own summary ---------------------------------------------------


async def customer_summary(actor: Actor, company_id: int, now: datetime) -> dict:
    """A customer's licences first: active / expiring / expired / unlicensed
    users, free seats of each running batch with its end, pending requests and
    the next batch end."""
    company = await get_company(actor, company_id)
    counts = await tab_counts(actor, company["id"], now)
    expiring = await Company.raw(
        "SELECT COALESCE(SUM(users), 0) AS n FROM licence_tally WHERE company = {} AND ends_at > {} AND ends_at <= {}",
        company["id"],
        now,
        now + EXPIRING_WITHIN,
    )
    is_running = (
        (LicenceBatch.company == company["id"]) & (LicenceBatch.starts_at <= now) & (LicenceBatch.ends_at > now)
    )
    rows = await LicenceBatch.raw(
        _BATCHES_SQL + " ORDER BY licence_batch.ends_at, licence_batch.id",
        now - SOON,
        (Company.id == company["id"]).querystring,
        is_running.querystring,
    )
    running = [describe_batch(row, now) for row in rows]
    pending = await LicenceOrder.count().where(
        (LicenceOrder.company == company["id"]) & (LicenceOrder.status == "requested")
    )
    expiring_n = int(expiring[0]["n"] or 0)
    return {
        "company": company,
        "active": counts["active"] - expiring_n,
        "expiring": expiring_n,
        "expired": counts["expired"],
        "unlicensed": counts["unlicensed"],
        "batches": running,
        "free": sum(b["free"] for b in running),
        "pending": pending,
        "next_end": running[0] if running else None,
    }
