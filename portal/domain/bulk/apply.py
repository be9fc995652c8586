"""Working through a run's items: each claimed, applied through the rule that
owns its action and recorded (status, what was done or why not, an audit
entry) in one transaction.

Once per item, whoever runs it and however often: an item is claimed by
locking its row (PostgreSQL skips rows another worker holds; SQLite has one
writer), and only a queued one is applied. A worker killed mid-item rolls the
whole item back (the rule's writes with it), so another job takes it again.
What the rule refuses (already renewed, cancelled, over the partner's limit,
no free seats) is undone to a savepoint and recorded as skipped with its words."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, load_actor
from portal.domain.dashboard import same_quantity
from portal.domain.errors import DomainError
from portal.domain.licences import allocation, auto_renewal
from portal.domain.licences.tabs import seats_and_waiting
from portal.domain.orders import decisions
from portal.tables import Company
from portal.tables.bulk import BulkItem, BulkRun


class Skipped(DomainError):
    """An item with nothing to do: recorded with this reason, nothing written."""


def _renewed_said(done: same_quantity.Renewed) -> str:
    return f"Renewed: {done.order['quantity']:,} × {done.product['name']}, {done.batch['term'].said_done}."


async def _renew(actor: Actor, item: dict[str, Any], now: datetime) -> str:
    done = (await same_quantity.renew_many(actor, [item["target"]], now))[item["target"]]
    if isinstance(done, str):
        raise Skipped(done)
    return _renewed_said(done)


async def _assign(actor: Actor, item: dict[str, Any], now: datetime) -> str:
    batch = await decisions.assign_order(actor, item["target"], now)
    return f"Assigned: {batch['seats']:,} seats, {batch['term'].said_done}."


async def _allocate(actor: Actor, item: dict[str, Any], now: datetime) -> str:
    """Select All for the customer, on Expired Licenses then Unlicensed, from each
    running batch with free seats in turn (the one ending first first), until the
    seats or the users waiting run out."""
    company = item["company"]
    seats = await seats_and_waiting(company, now)
    if not seats.free:
        raise Skipped("No free seats.")
    if not seats.waiting:
        raise Skipped("No users waiting for a seat.")
    given = 0
    for tab in ("expired", "unlicensed"):
        for _ in range(100):  # one pass per batch with free seats
            try:
                result = await allocation.allocate(
                    actor, company, allocation.Selection(select_all_tab=tab), now, up_to_free=True
                )
            except allocation.NotEnoughSeats:
                return _allocated(given, seats.waiting)
            if not result.renewed:
                break
            given += result.renewed
    return _allocated(given, seats.waiting)


def _allocated(given: int, waiting: int) -> str:
    if not given:
        raise Skipped("No free seat suits the users waiting (their licenses run past the free seats' end).")
    left = waiting - given
    return f"Allocated {given:,} seat{'' if given == 1 else 's'}" + (
        f"; {left:,} user{'' if left == 1 else 's'} still waiting (no free seats left)." if left else "."
    )


async def _auto_renew(actor: Actor, item: dict[str, Any], now: datetime) -> str:
    _, setting = await auto_renewal.get_setting(actor, item["company"])
    if setting.mode == "renew":
        raise Skipped("Already on: " + setting.said)
    saved = await auto_renewal.save_setting(
        actor,
        item["company"],
        mode="renew",
        days_before=setting.days_before,
        quantity=setting.quantity,
        now=now,
    )
    return "Turned on: " + saved.said


APPLY: dict[str, Callable[[Actor, dict[str, Any], datetime], Awaitable[str]]] = {
    "renew": _renew,
    "assign": _assign,
    "allocate": _allocate,
    "auto_renew": _auto_renew,
}


# Items applied in one transaction: fewer commits; a worker killed mid-chunk rolls the chunk back.
CHUNK = 25
# "Renew selected" renews a chunk's batches together (same_quantity.renew_many): a few
# statements whatever its size, so a bigger chunk.
RENEW_CHUNK = 200
# Items a job applies between looks at its time budget (portal/jobs/bulk.py).
PER_CALL = 200


def chunk_size(action: str) -> int:
    return RENEW_CHUNK if action == "renew" else CHUNK


async def _claim(run_id: int, size: int) -> list[dict[str, Any]]:
    """Up to `size` of the run's queued items, locked until the transaction ends,
    in the order of their customers: every transaction takes the customers' seat
    locks in that one order, so two jobs never wait on each other in a circle."""
    return cast(
        "list[dict[str, Any]]",
        await BulkItem.raw(
            "SELECT id, company, target FROM bulk_item WHERE run = {} AND status = 'queued' "
            f"ORDER BY company, id LIMIT {int(size)}{db.skip_locked()}",
            run_id,
        ),
    )


async def _apply_one(run: dict[str, Any], actor: Actor | None, item: dict[str, Any], now: datetime) -> None:
    status = "done"
    if actor is None:
        status, outcome = "skipped", "Not done: the manager who confirmed it can no longer sign in."
    else:
        try:
            async with db.savepoint():
                outcome = await APPLY[run["action"]](actor, item, now)
        except DomainError as refused:
            status, outcome = "skipped", str(refused)
    await BulkItem.update({BulkItem.status: status, BulkItem.outcome: outcome, BulkItem.finished_at: now}).where(
        BulkItem.id == item["id"]
    )
    await audit.record(
        actor,
        f"bulk.{run['action']}",
        item["company"],
        now,
        {"run": run["id"], "item": item["id"], "target": item["target"], "status": status, "outcome": outcome},
        actor_id=run["created_by"],
        dedupe_key=f"bulk_item:{item['id']}",
    )


async def apply_chunk(run: dict[str, Any], actor: Actor | None, now: datetime, size: int | None = None) -> int:
    """Claim, apply and record up to `size` items of `run` in one transaction;
    returns how many (0: none is free to claim)."""
    async with db.write_transaction():
        items = await _claim(run["id"], size or chunk_size(run["action"]))
        if run["action"] == "renew" and actor is not None and items:
            await _renew_together(run, actor, items, now)
        else:
            for item in items:
                await _apply_one(run, actor, item, now)
    return len(items)


async def _renew_together(run: dict[str, Any], actor: Actor, items: list[dict[str, Any]], now: datetime) -> None:
    """The claimed items' batches renewed by one renew_many, each item recorded
    with what was done or why not and audited, in a few statements."""
    done = await same_quantity.renew_many(actor, [item["target"] for item in items], now)
    results: list[tuple[int, str, str]] = []
    seen: set[int] = set()
    for item in items:
        outcome = done.get(item["target"], "No such batch.")
        if item["target"] in seen:
            outcome = "Already renewed by another item of this run."
        seen.add(item["target"])
        if isinstance(outcome, same_quantity.Renewed):
            results.append((item["id"], "done", _renewed_said(outcome)))
        else:
            results.append((item["id"], "skipped", outcome))
    table, values = db.rows_table(("int", "text", "text"), results)
    await BulkItem.raw(
        "UPDATE bulk_item SET status = r.column2, outcome = r.column3, finished_at = {} "
        f"FROM {table} AS r WHERE bulk_item.id = r.column1",
        now,
        *values,
    )
    by_id = {item["id"]: item for item in items}
    await db.copy_rows(
        "audit_entry",
        same_quantity.AUDIT_COLUMNS,
        [
            (
                now,
                actor.user_id,
                actor.managing_id,
                by_id[item_id]["company"],
                "bulk.renew",
                json.dumps(
                    {
                        "run": run["id"],
                        "item": item_id,
                        "target": by_id[item_id]["target"],
                        "status": status,
                        "outcome": outcome,
                    }
                ),
                f"bulk_item:{item_id}",
            )
            for item_id, status, outcome in results
        ],
    )


async def queued(run_id: int) -> int:
    return cast("int", await BulkItem.count().where((BulkItem.run == run_id) & (BulkItem.status == "queued")))


async def runs_waiting() -> list[int]:
    """Runs with items still queued, for a job to take up."""
    rows = await BulkRun.select(BulkRun.id).where(BulkRun.status == "queued").order_by(BulkRun.id)
    return [row["id"] for row in rows]


async def finish(run_id: int, now: datetime) -> bool:
    """Mark the run done once no item waits; True if it is done."""
    async with db.write_transaction():
        await db.for_update(BulkRun.select(BulkRun.id).where(BulkRun.id == run_id))
        if await queued(run_id):
            return False
        await BulkRun.update({BulkRun.status: "done", BulkRun.finished_at: now}).where(
            (BulkRun.id == run_id) & (BulkRun.status == "queued")
        )
    return True


async def load_run(run_id: int) -> tuple[dict[str, Any] | None, Actor | None]:
    """The run and the manager who confirmed it, as they are now (None if they can no longer act)."""
    run = await BulkRun.select().where(BulkRun.id == run_id).first()
    if run is None or run["created_by"] is None:
        return run, None
    actor = await load_actor(run["created_by"], None)
    if actor is not None and not actor.is_partner_manager:
        actor = None
    # A run is its partner's: a manager moved elsewhere no longer acts for it.
    company = await Company.select(Company.path).where(Company.id == run["company"]).first()
    if actor is not None and (company is None or not company["path"].startswith(actor.company_path)):
        actor = None
    return run, actor


async def process(run_id: int, now: datetime, limit: int | None = None) -> int:
    """Apply queued items of the run until none is free (or `limit` are applied);
    returns how many this call applied."""
    run, actor = await load_run(run_id)
    if run is None:
        return 0
    applied = 0
    while limit is None or applied < limit:
        chunk = chunk_size(run["action"])
        size = chunk if limit is None else min(chunk, limit - applied)
        took = await apply_chunk(run, actor, now, size)
        if not took:
            break
        applied += took
    return applied
