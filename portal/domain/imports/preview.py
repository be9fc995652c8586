"""An uploaded file, its rows in csv_import_row, and what "Renew Licences" would do.

The file is read once per choice of column, as a stream, into csv_import_row
in chunks (COPY on PostgreSQL); then a handful of set-based statements sort
every row into one outcome, joining the file's addresses with the company's
users: no query per row, whatever the file's size. The same `classify` runs
again under the company's write lock when the import is applied, so the
preview's counts are what happens unless the data changed meanwhile.

A preview is stale (`is_stale`) once the company's licences changed after it
(csv_import.stale, set by triggers on licence_tally and licence_batch) or once
the clock alone changes an outcome (`fresh_until`: an active user's licence
comes within 72 hours of its end, or the seats' batch ends). A preview is made
under the company's lock with the mark cleared first, so a change that the
preview did not see marks it again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import anyio

from portal import db
from portal.domain.access import Actor, get_company
from portal.domain.errors import DomainError, NotFound, ValidationFailed
from portal.domain.imports import reader
from portal.domain.imports.addresses import name_for, parse_cell
from portal.domain.imports.limits import ImportFiles
from portal.domain.imports.reader import CsvRefused
from portal.domain.licences import batches
from portal.domain.licences.status import EXPIRING_WITHIN
from portal.domain.pages import Page, paginate
from portal.tables import Company
from portal.tables.imports import CsvImport, CsvImportRow

CHUNK_ROWS = 5000
READ_BYTES = 1024 * 1024
SEATED = ("renew", "new")
# Why a row is not renewed, in the order the page lists them.
REASONS = {
    "unknown": "Not a user of this company",
    "active": "Already active (not expired)",
    "duplicate": "Listed twice",
    "invalid": "Not an e-mail address",
    "no_seat": "No free seat",
}
OUTCOME_LABELS = {"renew": "Renewed", "new": "Added as a new learner and given a seat", **REASONS}
# Outcomes of a row that is one person: only an address's first row gets one of
# these, so they count people; a repeat or a cell without an address is no one more.
PEOPLE_NOT_SEATED = ("unknown", "active", "no_seat")
_UPLOAD_COLUMNS = ("line", "email", "name", "cell")


async def receive(
    actor: Actor, company_id: int, filename: str, source: BinaryIO, now: datetime, files: ImportFiles
) -> int:
    """Keep an uploaded file under `files`, read its layout, and preview it with the guessed
    e-mail column. Refused (CsvRefused, nothing kept) when it cannot be imported."""
    company = await get_company(actor, company_id)
    files.directory.mkdir(parents=True, exist_ok=True)
    stored_as = f"{company['id']}-{secrets.token_hex(12)}.csv"
    path = files.path_of(stored_as)
    try:
        # File work and guessing the layout: in a thread, off the event loop that serves other requests.
        size, layout = await anyio.to_thread.run_sync(_store, source, path, files)
        row = await CsvImport.insert(
            CsvImport(
                company=company["id"],
                created_by=actor.user_id,
                created_at=now,
                filename=(filename or "upload.csv")[:255],
                stored_as=stored_as,
                size_bytes=size,
                encoding=layout.encoding,
                delimiter=layout.delimiter,
                has_header=layout.has_header,
                columns=list(layout.columns),
                email_column=layout.guess,
            )
        )
        import_id: int = row[0]["id"]
        try:
            await choose_column(actor, company["id"], import_id, layout.guess, False, now, files)
        except Exception:  # a refusal, or the database failing midway: no import without its rows
            await CsvImport.delete().where(CsvImport.id == import_id)
            raise
        return import_id
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _store(source: BinaryIO, path: Path, files: ImportFiles) -> tuple[int, reader.Layout]:
    """Write the upload to `path` (refused over the size limit) and read its layout."""
    size = 0
    with open(path, "wb") as out:
        while chunk := source.read(READ_BYTES):
            size += len(chunk)
            if size > files.max_bytes:
                raise CsvRefused(files.too_big_message)
            out.write(chunk)
    if size == 0:
        raise CsvRefused("The file is empty. Choose a CSV file with a column of e-mail addresses.")
    return size, reader.inspect(path)


async def get_import(actor: Actor, company_id: int, import_id: int) -> dict[str, Any]:
    """An import of a company the actor may act on; another tenant's id answers NotFound."""
    company = await get_company(actor, company_id)
    row = (
        await CsvImport.select()
        .where((CsvImport.id == import_id) & (CsvImport.company == company["id"]))
        .output(load_json=True)
        .first()
    )
    if row is None:
        raise NotFound("No such import.")
    return row


def layout_of(row: dict[str, Any], files: ImportFiles) -> reader.Layout | None:
    """The file's layout and first rows, read again from the kept file (None once it is gone),
    with the encoding and delimiter found at the upload."""
    path = files.path_of(row["stored_as"])
    if not row["stored_as"] or not path.exists():
        return None
    return reader.inspect(path, known=(row["encoding"], row["delimiter"]))


async def choose_column(
    actor: Actor,
    company_id: int,
    import_id: int,
    column: int | None,
    add_unknown: bool,
    now: datetime,
    files: ImportFiles,
) -> dict[str, Any]:
    """Read the file's rows with `column` as the e-mail column and classify them.
    On a refusal the previous choice stays as it was."""
    row = await get_import(actor, company_id, import_id)
    if row["status"] != "previewed":
        raise DomainError("This import was already sent for renewal; upload the file again to change it.")
    columns = row["columns"]
    if column is None or not 0 <= column < len(columns):
        raise ValidationFailed({"column": "Choose the column that holds the e-mail addresses."})
    path = files.path_of(row["stored_as"])
    if not row["stored_as"] or not path.exists():
        raise DomainError("The uploaded file is no longer here. Upload it again.")
    async with db.write_transaction():
        await _lock_company_and_clear_stale(row["company"], import_id)
        await db.roomy_sorts()
        # The file's rows go to a scratch table (COPY, no index), then into csv_import_row
        # once, with their outcome: a row is written one time, not written and updated.
        await db.scratch_table("csv_upload", "line INTEGER, email VARCHAR(320), name VARCHAR(200), cell TEXT")
        records = reader.rows(path, row["encoding"], row["delimiter"], row["has_header"])
        total, found = await _copy_file_rows(records, column)
        if not found:
            raise CsvRefused(
                f"The column “{columns[column]}” holds no e-mail addresses. "
                "Choose the column with your users' e-mail addresses."
            )
        await CsvImportRow.delete().where(CsvImportRow.csv_import == import_id)
        summary = await _sort_rows(actor, row["company"], import_id, add_unknown, now, from_upload=True)
        await CsvImport.update(
            {
                CsvImport.email_column: column,
                CsvImport.add_unknown: add_unknown,
                CsvImport.rows: total,
                CsvImport.preview: summary,
            }
        ).where(CsvImport.id == import_id)
    return summary


async def _lock_company_and_clear_stale(company_id: int, import_id: int) -> None:
    """Before a preview: the company's lock (writers of its licences take it
    first), then the stale mark cleared, so that any change the preview does not
    see sets it again after."""
    await db.for_update(Company.select(Company.id).where(Company.id == company_id))
    await CsvImport.update({CsvImport.stale: False}).where(CsvImport.id == import_id)


def is_stale(row: dict[str, Any], now: datetime) -> bool:
    """Whether a previewed import's counts may no longer be what "Renew Licences" would do."""
    if row["status"] != "previewed":
        return False
    if row.get("stale"):
        return True
    until = (row.get("preview") or {}).get("fresh_until")
    return until is not None and now >= datetime.fromisoformat(until)


async def refresh(actor: Actor, company_id: int, import_id: int, now: datetime) -> dict[str, Any]:
    """Count a previewed import again from its rows (the file is not needed)."""
    row = await get_import(actor, company_id, import_id)
    async with db.write_transaction():
        summary = await refresh_locked(actor, row["company"], import_id, now)
    if summary is None:
        raise DomainError("This import was already sent for renewal; upload the file again to change it.")
    return summary


async def refresh_locked(actor: Actor, company_id: int, import_id: int, now: datetime) -> dict[str, Any] | None:
    """In a write transaction: the preview made again under the company's lock;
    None if the import is no longer previewed."""
    await _lock_company_and_clear_stale(company_id, import_id)
    current = await CsvImport.select(CsvImport.status, CsvImport.add_unknown).where(CsvImport.id == import_id).first()
    if current is None or current["status"] != "previewed":
        return None
    summary = await classify(actor, company_id, import_id, current["add_unknown"], now)
    await CsvImport.update({CsvImport.preview: summary}).where(CsvImport.id == import_id)
    return summary


async def _copy_file_rows(records: Iterator[tuple[int, list[str]]], column: int) -> tuple[int, int]:
    """COPY the file's rows into csv_upload; returns (rows, rows with an address).
    Reading and parsing is CPU work, so it runs in a thread (the event loop serves
    other requests meanwhile), and the next chunk is read while the database
    writes the last one: the two overlap instead of taking turns."""
    total = found = 0
    ahead = asyncio.ensure_future(anyio.to_thread.run_sync(_next_chunk, records, column))
    try:
        while True:
            chunk, seen = await ahead
            if not chunk:
                return total, found
            ahead = asyncio.ensure_future(anyio.to_thread.run_sync(_next_chunk, records, column))
            total += len(chunk)
            found += seen
            await db.copy_rows("csv_upload", _UPLOAD_COLUMNS, chunk)
    finally:
        # A failed COPY leaves a chunk being read: wait for it (a thread cannot be
        # stopped), so nothing reads the file once this returns; the COPY's error
        # is the one raised, the reading's own (if any) goes with it.
        await asyncio.gather(ahead, return_exceptions=True)


def _next_chunk(records: Iterator[tuple[int, list[str]]], column: int) -> tuple[list[tuple[Any, ...]], int]:
    """Up to CHUNK_ROWS rows (line, address or None, a new learner's name, the cell),
    and how many of them hold an address."""
    chunk: list[tuple[Any, ...]] = []
    found = 0
    for line, cells in records:
        cell = cells[column] if column < len(cells) else ""
        address, given_name, _ = parse_cell(cell)
        if address:
            found += 1
            chunk.append((line, address, name_for(address, given_name), cell[:500]))
        else:
            chunk.append((line, None, "", cell[:500]))
        if len(chunk) >= CHUNK_ROWS:
            break
    return chunk, found


async def seat_batch(actor: Actor, company_id: int, now: datetime) -> batches.BatchRow | None:
    """Where the seats come from: the running batch that ends first and has a
    free seat, as "Allocate Licenses" picks it (batches.batches' order)."""
    for batch in await batches.batches(actor, company_id, now):
        if batch["running"] and batch["free"] > 0:
            return batch
    return None


def _outcome_sql(add_unknown: bool) -> tuple[str, str]:
    """The CASE that gives a file row (`row`) its outcome, and the joins it needs;
    its parameters: the end a renewal must exceed, the company.

    The first of equal addresses stays, later ones are listed twice; expired,
    expiring or never licensed users not covered past the batch's end are
    renewed; an address with an account elsewhere (or deactivated) is not a
    user of this company, even with "Import Allocation"."""
    unknown = "CASE WHEN anyone.id IS NULL THEN 'new' ELSE 'unknown' END" if add_unknown else "'unknown'"
    case = (
        "CASE WHEN row.email IS NULL THEN 'invalid'"
        " WHEN row.line > MIN(row.line) OVER (PARTITION BY row.email) THEN 'duplicate'"
        f" WHEN mine.id IS NULL THEN {unknown}"
        " WHEN mine.licence_ends_at IS NULL OR mine.licence_ends_at < {} THEN 'renew'"
        " ELSE 'active' END"
    )
    joins = " LEFT JOIN portal_user AS mine ON mine.email = row.email AND mine.company = {} AND mine.active"
    if add_unknown:
        joins += " LEFT JOIN portal_user AS anyone ON anyone.email = row.email"
    return case, joins


async def classify(actor: Actor, company_id: int, import_id: int, add_unknown: bool, now: datetime) -> dict[str, Any]:
    """Give every row of the import its outcome again (as "Renew Licences" does,
    under the company's lock); returns the counts and the batch."""
    return await _sort_rows(actor, company_id, import_id, add_unknown, now, from_upload=False)


async def _sort_rows(
    actor: Actor, company_id: int, import_id: int, add_unknown: bool, now: datetime, from_upload: bool
) -> dict[str, Any]:
    """Set-based, in file order: each row's outcome from one join of the file's
    addresses with the company's users, then "no free seat" for the renewals
    past the free seats. From the upload's scratch table, the rows are inserted
    with their outcome; otherwise only the rows whose outcome changed are written."""
    batch = await seat_batch(actor, company_id, now)
    free = batch["free"] if batch else 0
    covered_until = min(now + EXPIRING_WITHIN, batch["ends_at"]) if batch else now + EXPIRING_WITHIN
    raw = CsvImport.raw
    case, joins = _outcome_sql(add_unknown)
    if from_upload:
        await raw(
            "INSERT INTO csv_import_row (csv_import, line, email, name, cell, outcome, user_id) "
            f"SELECT {{}}, row.line, row.email, row.name, row.cell, {case}, mine.id FROM csv_upload AS row{joins}",
            import_id,
            covered_until,
            company_id,
        )
    else:
        await raw(
            "UPDATE csv_import_row SET outcome = sorted.outcome, user_id = sorted.user_id FROM ("
            f" SELECT row.id, mine.id AS user_id, {case} AS outcome FROM csv_import_row AS row{joins}"
            " WHERE row.csv_import = {}) AS sorted WHERE csv_import_row.id = sorted.id"
            " AND (csv_import_row.outcome IS DISTINCT FROM sorted.outcome"
            " OR csv_import_row.user_id IS DISTINCT FROM sorted.user_id)",
            covered_until,
            company_id,
            import_id,
        )
    cutoff = await raw(
        "SELECT line FROM csv_import_row WHERE csv_import = {} AND outcome IN ('renew', 'new') "
        f"ORDER BY line LIMIT 1 OFFSET {int(free)}",
        import_id,
    )
    if cutoff:
        await raw(
            "UPDATE csv_import_row SET outcome = 'no_seat' "
            "WHERE csv_import = {} AND outcome IN ('renew', 'new') AND line >= {}",
            import_id,
            cutoff[0]["line"],
        )
    counted = await raw(
        "SELECT outcome, COUNT(*) AS n FROM csv_import_row WHERE csv_import = {} GROUP BY outcome", import_id
    )
    counts = {r["outcome"]: int(r["n"]) for r in counted}
    # The first active user whose licence end the 72 hours will reach (before the batch's end).
    soonest = await raw(
        "SELECT portal_user.licence_ends_at FROM csv_import_row "
        "JOIN portal_user ON portal_user.id = csv_import_row.user_id "
        "WHERE csv_import_row.csv_import = {} AND csv_import_row.outcome = 'active' "
        "ORDER BY portal_user.licence_ends_at LIMIT 1",
        import_id,
    )
    fresh_until = batch["ends_at"] if batch else None
    if soonest and soonest[0]["licence_ends_at"] is not None:
        ends = soonest[0]["licence_ends_at"]
        if batch is None or ends < batch["ends_at"]:
            fresh_until = ends - EXPIRING_WITHIN if fresh_until is None else min(fresh_until, ends - EXPIRING_WITHIN)
    return {
        "counts": counts,
        "rows": sum(counts.values()),
        "seated": sum(counts.get(o, 0) for o in SEATED),
        "free": free,
        "batch_id": batch["id"] if batch else None,
        "batch_ends_at": batch["ends_at"].isoformat() if batch else None,
        "fresh_until": fresh_until.isoformat() if fresh_until else None,
    }


def not_renewed(summary: dict[str, Any]) -> dict[str, Any]:
    """Who is not renewed, in people (`users`) and in rows of the file (`rows`,
    which also counts repeated addresses and cells without one)."""
    counts = summary.get("counts", {})
    return {
        "users": sum(counts.get(o, 0) for o in PEOPLE_NOT_SEATED),
        "rows": summary.get("rows", 0) - summary.get("seated", 0),
    }


async def rows_of(
    actor: Actor, company_id: int, import_id: int, outcomes: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    """The first `limit` rows with one of `outcomes`, in file order."""
    await get_import(actor, company_id, import_id)
    return (
        await CsvImportRow.select(CsvImportRow.line, CsvImportRow.email, CsvImportRow.cell, CsvImportRow.outcome)
        .where((CsvImportRow.csv_import == import_id) & CsvImportRow.outcome.is_in(list(outcomes)))
        .order_by(CsvImportRow.line)
        .limit(limit)
    )


async def iter_rows(import_id: int, outcomes: tuple[str, ...], chunk: int = 5000) -> AsyncIterator[dict[str, Any]]:
    """Every row with one of `outcomes`, in file order, a chunk at a time (downloads)."""
    after = -1
    while True:
        batch = (
            await CsvImportRow.select(CsvImportRow.line, CsvImportRow.email, CsvImportRow.cell, CsvImportRow.outcome)
            .where(
                (CsvImportRow.csv_import == import_id)
                & CsvImportRow.outcome.is_in(list(outcomes))
                & (CsvImportRow.line > after)
            )
            .order_by(CsvImportRow.line)
            .limit(chunk)
        )
        if not batch:
            return
        for row in batch:
            yield row
        after = batch[-1]["line"]


async def company_imports(actor: Actor, company_id: int, page: int, now: datetime) -> Page[dict[str, Any]]:
    """A page of the company's imports, newest first, each with `stale` (is_stale)."""
    company = await get_company(actor, company_id)
    where = CsvImport.company == company["id"]
    select = (
        CsvImport.select(
            CsvImport.id,
            CsvImport.filename,
            CsvImport.created_at,
            CsvImport.status,
            CsvImport.rows,
            CsvImport.preview,
            CsvImport.result,
            CsvImport.stale,
            CsvImport.created_by.name.as_alias("created_by_name"),
        )
        .where(where)
        .order_by(CsvImport.id, ascending=False)
        .output(load_json=True)
    )
    listing = await paginate(select, CsvImport.count().where(where), page)
    for item in listing.items:
        item["stale"] = is_stale(item, now)
    return listing
