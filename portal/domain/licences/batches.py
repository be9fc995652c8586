"""A company's licence batches as the Licenses section shows them, and which
of them "Take seats from" offers."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from portal.domain.access import Actor, get_company
from portal.domain.licences.plans import plan_label, plan_names
from portal.domain.licences.status import licence_status
from portal.tables import LicenceBatch


async def batches(actor: Actor, company_id: int, now: datetime) -> list[BatchRow]:
    company = await get_company(actor, company_id)
    return await _batches(company["id"], now)


class BatchRow(TypedDict):
    """A licence batch of one company as the Licenses section shows it: _BATCHES_SQL's
    columns, then what _batches works out against the clock."""

    id: int
    seats: int
    allocated: int
    starts_at: datetime
    ends_at: datetime
    order_id: int
    po_number: str | None
    product_name: str
    is_trial: bool
    free: int
    running: bool
    status: str  # a licence status while running, "upcoming" before it starts (a renewal), else "ended"


# Written out, as on every Licenses page (see access._ACTOR_SQL).
_BATCHES_SQL = (
    "SELECT licence_batch.id, licence_batch.seats, licence_batch.allocated, licence_batch.starts_at, "
    "licence_batch.ends_at, licence_order.id AS order_id, licence_order.po_number, "
    "product.name AS product_name, product.is_trial "
    "FROM licence_batch "
    'JOIN licence_order ON licence_order.id = licence_batch."order" '
    "JOIN product ON product.id = licence_batch.product "
    "WHERE licence_batch.company = {}"
)


async def _batches(company_id: int, now: datetime) -> list[BatchRow]:
    """The company's batches, running first (ending soonest first), then the ended."""
    rows: list[BatchRow] = await LicenceBatch.raw(_BATCHES_SQL, company_id)
    plans = await plan_names((row["order_id"], company_id) for row in rows)
    for row in rows:
        if row["order_id"] in plans:
            row["product_name"] = plan_label(plans[row["order_id"]])
        row["free"] = row["seats"] - row["allocated"]
        row["running"] = row["starts_at"] <= now < row["ends_at"]
        if row["running"]:
            row["status"] = licence_status(row["ends_at"], now)
        else:
            # A renewal starts where the batch it renews ends: not ended, not yet running.
            row["status"] = "upcoming" if row["starts_at"] > now else "ended"
    return sorted(
        rows,
        key=lambda r: (not r["running"], r["ends_at"] if r["running"] else -r["ends_at"].timestamp(), r["id"]),
    )


def seats_to_take(batches: list[BatchRow]) -> list[BatchRow]:
    """The batches "Take seats from" offers: running, with a free seat, ending soonest first."""
    return [b for b in batches if b["running"] and b["free"] > 0]


def longest_running(batches: list[BatchRow]) -> int | None:
    """Manual allocation's default: the batch that runs longest gives the latest end date."""
    return max(batches, key=lambda b: (b["ends_at"], b["id"]))["id"] if batches else None
