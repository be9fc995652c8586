""" "Renew Licences" for an import: its rows classified again under the company's
write lock, unknown addresses added as learners when asked ("Import
Allocation"), and the seats given by the one allocation rule,
`allocation.allocate`, with a selection that is the import's rows.

All of it is one transaction: a worker killed halfway leaves nothing written,
and the job run again does it all; an import already applied is not applied
again (checked under the lock), so the same file twice, or a double click, or
two workers, renew nobody twice.

A manager's "Renew Licences" on a stale preview (preview.is_stale) renews no
one: the preview is made again, in the same locked transaction, and PreviewStale
asks the manager to check the new counts and confirm. A job already queued
applies what the rows say then, and its result lists what changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable

from portal import db
from portal.domain import audit
from portal.domain.access import Actor
from portal.domain.errors import DomainError
from portal.domain.imports import limits
from portal.domain.imports.limits import ImportFiles
from portal.domain.imports.preview import REASONS, classify, get_import, is_stale, refresh_locked
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.tables import Company
from portal.tables.imports import CsvImport


class PreviewStale(DomainError):
    """The company's licences changed since the preview: it was made again, nothing renewed."""


STALE_MESSAGE = (
    "The company's licenses changed since this preview, so it was counted again and nothing was renewed. "
    "Check the new counts below, then choose “Renew Licences” again."
)


@dataclass(frozen=True)
class ImportSelection(Selection):
    """The users of an import's rows that are to get a seat: a sub-select, so
    100,000 users cost no bound parameter each."""

    import_id: int = 0

    def clause(self, now: datetime) -> Combinable:
        return WhereRaw(
            "portal_user.id IN (SELECT user_id FROM csv_import_row "
            "WHERE csv_import = {} AND outcome IN ('renew', 'new'))",
            self.import_id,
        )


def changes(preview: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between the preview and what was done (the data changed
    meanwhile: a seat taken, a user renewed by hand), outcome by outcome."""
    before, after = preview.get("counts", {}), result.get("counts", {})
    labels = {"renew": "Renewed", "new": "New learners", **REASONS}
    return [
        {"outcome": key, "label": label, "before": before.get(key, 0), "after": after.get(key, 0)}
        for key, label in labels.items()
        if before.get(key, 0) != after.get(key, 0)
    ]


async def renew_licences(
    actor: Actor,
    company_id: int,
    import_id: int,
    now: datetime,
    start_job: Callable[[], Awaitable[None]],
    files: ImportFiles,
) -> None:
    """ "Renew Licences": a preview of up to limits.JOB_ROWS rows is applied now, as
    the manager waits; a bigger one is marked queued and handed to `start_job`. Asked
    again (a job lost with its process), the job is started again: a job that finds
    the import done does nothing. An import already done changes nothing."""
    row = await get_import(actor, company_id, import_id)
    if row["status"] == "done":
        return
    if row["rows"] > limits.JOB_ROWS:
        await queue(actor, company_id, import_id, now)
        await start_job()
    else:
        await apply(actor, company_id, import_id, now, files, refuse_stale=True)


async def queue(actor: Actor, company_id: int, import_id: int, now: datetime) -> bool:
    """Mark a previewed import as waiting for its job; False if it already left
    "previewed". A stale preview is made again instead (PreviewStale)."""
    row = await get_import(actor, company_id, import_id)
    async with db.write_transaction():
        await db.for_update(Company.select(Company.id).where(Company.id == row["company"]))
        current = await CsvImport.select().where(CsvImport.id == import_id).output(load_json=True).first()
        stale = current is not None and is_stale(current, now)
        if stale:
            await refresh_locked(actor, row["company"], import_id, now)
        else:
            updated = (
                await CsvImport.update({CsvImport.status: "queued"})
                .where((CsvImport.id == import_id) & (CsvImport.status == "previewed"))
                .returning(CsvImport.id)
            )
    if stale:
        raise PreviewStale(STALE_MESSAGE)
    return bool(updated)


async def apply(
    actor: Actor, company_id: int, import_id: int, now: datetime, files: ImportFiles, *, refuse_stale: bool = False
) -> dict[str, Any]:
    """Renew the import's users; returns the import's result (the stored one if
    it was applied before). With `refuse_stale` (a manager confirming what the
    page showed), a stale preview is made again and PreviewStale raised instead."""
    row = await get_import(actor, company_id, import_id)
    async with db.write_transaction():
        await db.for_update(Company.select(Company.id).where(Company.id == row["company"]))
        current = await CsvImport.select().where(CsvImport.id == import_id).output(load_json=True).first()
        assert current is not None, "get_import found it, and imports go only with their company"
        if current["status"] == "done":
            return cast("dict[str, Any]", current["result"])
        if current["email_column"] is None:
            raise DomainError("Choose the column that holds the e-mail addresses first.")
        stale = refuse_stale and is_stale(current, now)
        if stale:
            await refresh_locked(actor, row["company"], import_id, now)
        else:
            result = await _renew(actor, row, current, now)
    if stale:
        raise PreviewStale(STALE_MESSAGE)
    # The rows hold all that is left to show; the file is not needed any more.
    if row["stored_as"]:
        files.path_of(row["stored_as"]).unlink(missing_ok=True)
    return result


async def _renew(actor: Actor, row: dict[str, Any], current: dict[str, Any], now: datetime) -> dict[str, Any]:
    """In apply's transaction, under the company's lock: classify, seat, record."""
    import_id = row["id"]
    await db.roomy_sorts()
    summary = await classify(actor, row["company"], import_id, current["add_unknown"], now)
    if summary["counts"].get("new"):
        await _add_learners(row["company"], import_id, now)
    if summary["seated"]:
        allocated = await allocation.allocate(
            actor, row["company"], ImportSelection(import_id=import_id), now, batch_id=summary["batch_id"]
        )
        if allocated.renewed != summary["seated"]:
            # classify and allocate disagree about who is covered: write nothing.
            raise DomainError("The renewal could not be matched to the file. Nothing was renewed; try again.")
    result = {**summary, "renewed": summary["seated"], "changes": changes(current["preview"], summary)}
    await CsvImport.update(
        {
            CsvImport.status: "done",
            CsvImport.result: result,
            CsvImport.applied_by: actor.user_id,
            CsvImport.applied_at: now,
        }
    ).where(CsvImport.id == import_id)
    await audit.record(
        actor,
        "imports.apply",
        row["company"],
        now,
        {
            "import": import_id,
            "file": row["filename"],
            "renewed": summary["seated"],
            "new_learners": summary["counts"].get("new", 0),
            "not_renewed": summary["rows"] - summary["seated"],
        },
    )
    return result


async def _add_learners(company_id: int, import_id: int, now: datetime) -> None:
    """ "Import Allocation": every address marked new becomes a learner, set-based."""
    stamp = db.timestamp_param()
    await CsvImport.raw(
        "INSERT INTO portal_user (company, email, name, role, password_hash, active, "
        "created_at, licence_ends_at, reminders_off) "
        f"SELECT {{}}, email, name, 'learner', NULL, true, {stamp}, NULL, false "
        "FROM csv_import_row WHERE csv_import = {} AND outcome = 'new' ORDER BY line",
        company_id,
        now,
        import_id,
    )
    await CsvImport.raw(
        "UPDATE csv_import_row SET user_id = "
        "(SELECT id FROM portal_user WHERE portal_user.email = csv_import_row.email) "
        "WHERE csv_import = {} AND outcome = 'new'",
        import_id,
    )
