"""A confirmed bulk action: one run per confirmation key, its items written
with it in one transaction; its progress and its summary per customer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.bulk.selection import ACTIONS, Selection, plan
from portal.domain.errors import NotFound, ValidationFailed
from portal.tables.bulk import BulkItem, BulkRun

_ITEM_COLUMNS = ("run", "company", "target", "label", "status", "outcome", "finished_at")


def new_key() -> str:
    """Drawn with a confirmation page and posted back by its button."""
    return secrets.token_urlsafe(24)


def _scoped(actor: Actor, key: str) -> str:
    # A key is the confirming manager's own: another's key never finds their run.
    return f"{actor.user_id}:{key}"


@dataclass(frozen=True)
class Started:
    run_id: int
    created: bool  # False: this confirmation had already started it
    queued: int  # items for the job


async def start_run(actor: Actor, selection: Selection, key: str, now: datetime) -> Started:
    """Record the confirmed action and its items, resolved again now, in one
    transaction. The same key again (a double click, ten requests at once, the
    back button) finds the run the first one started and writes nothing."""
    require_partner_manager(actor)
    require(actor, Capability.BULK)
    selection.check()
    key = key.strip()
    if not key or len(key) > 60:
        raise ValidationFailed({"key": "This confirmation is incomplete; open the confirmation page again."})
    scoped = _scoped(actor, key)
    async with db.write_transaction():
        claimed = await BulkRun.raw(
            "INSERT INTO bulk_run (company, created_by, confirmation_key, action, said, total, status, created_at) "
            "VALUES ({}, {}, {}, {}, '', 0, 'queued', {}) ON CONFLICT (confirmation_key) DO NOTHING RETURNING id",
            actor.company_id,
            actor.user_id,
            scoped,
            selection.action,
            now,
        )
        if not claimed:
            existing = await BulkRun.select(BulkRun.id).where(BulkRun.confirmation_key == scoped).first()
            assert existing is not None, "the key's run committed before the conflict was reported"
            return Started(existing["id"], created=False, queued=0)
        run_id = claimed[0]["id"]
        planned = await plan(actor, selection, now)
        if not planned.items:
            raise ValidationFailed({"selection": "None of the selected customers is under your wing any more."})
        records = [
            (
                run_id,
                item.company,
                item.target,
                item.label,
                "skipped" if item.skip else "queued",
                item.skip,
                now if item.skip else None,
            )
            for item in planned.items
        ]
        await db.copy_rows("bulk_item", _ITEM_COLUMNS, records)
        queued = len(planned.to_do)
        await BulkRun.update(
            {
                BulkRun.said: planned.said,
                BulkRun.total: len(records),
                BulkRun.status: "queued" if queued else "done",
                BulkRun.finished_at: None if queued else now,
            }
        ).where(BulkRun.id == run_id)
        await audit.record(
            actor,
            "bulk.start",
            actor.company_id,
            now,
            {"run": run_id, "action": selection.action, "said": planned.said, "items": len(records)},
        )
        # The items known to have nothing to do are audited one by one too.
        for item in planned.skipped:
            if item.skip:
                await audit.record(
                    actor,
                    f"bulk.{selection.action}",
                    item.company,
                    now,
                    {"run": run_id, "target": item.target, "status": "skipped", "outcome": item.skip},
                )
    return Started(run_id, created=True, queued=queued)


async def get_run(actor: Actor, run_id: int) -> dict[str, Any]:
    """A run its manager's company started (or one above it: a run is the partner's)."""
    require_partner_manager(actor)
    row = await BulkRun.raw(
        "SELECT bulk_run.*, company.path AS company_path, portal_user.name AS created_by_name FROM bulk_run "
        "JOIN company ON company.id = bulk_run.company "
        "LEFT JOIN portal_user ON portal_user.id = bulk_run.created_by WHERE bulk_run.id = {}",
        run_id,
    )
    if not row or not row[0]["company_path"].startswith(actor.company_path):
        raise NotFound("No such bulk action.")
    run = row[0]
    run["action_label"] = ACTIONS.get(run["action"], run["action"])
    return cast("dict[str, Any]", run)


@dataclass(frozen=True)
class Progress:
    total: int
    finished: int
    done: int
    skipped: int

    @property
    def running(self) -> bool:
        return self.finished < self.total

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(self.finished * 100 / self.total)


async def progress(run_id: int) -> Progress:
    rows = await BulkItem.raw("SELECT status, COUNT(*) AS n FROM bulk_item WHERE run = {} GROUP BY status", run_id)
    counts = {row["status"]: int(row["n"]) for row in rows}
    total = sum(counts.values())
    return Progress(total, total - counts.get("queued", 0), counts.get("done", 0), counts.get("skipped", 0))


async def summary(run_id: int) -> list[dict[str, Any]]:
    """Per customer, by name: each item with its label, status and outcome."""
    rows = await BulkItem.raw(
        "SELECT bulk_item.id, bulk_item.company, company.name AS company_name, bulk_item.target, bulk_item.label, "
        "bulk_item.status, bulk_item.outcome FROM bulk_item JOIN company ON company.id = bulk_item.company "
        "WHERE bulk_item.run = {} ORDER BY company.name, bulk_item.company, bulk_item.id",
        run_id,
    )
    customers: list[dict[str, Any]] = []
    for row in rows:
        if not customers or customers[-1]["id"] != row["company"]:
            customers.append({"id": row["company"], "name": row["company_name"], "items": []})
        customers[-1]["items"].append(row)
    return customers
