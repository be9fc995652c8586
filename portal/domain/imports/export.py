"""CSV downloads that are safe to open in a spreadsheet (OWASP, CSV injection):
a cell that starts with =, +, -, @, a tab or a carriage return, also after
leading whitespace, is written with a leading apostrophe, so the spreadsheet
shows it as text instead of running it.
Rows are written a chunk at a time; a download of 100,000 rows is never one string."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from portal.domain.access import Actor, get_company
from portal.domain.imports.preview import OUTCOME_LABELS, get_import, iter_rows
from portal.domain.licences.status import licence_status
from portal.domain.orders import order_list
from portal.domain.users import ROLE_LABELS
from portal.tables import User

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
STATUS_WORDS = {"active": "Active", "expiring": "Expiring", "expired": "Expired", "unlicensed": "Unlicensed"}
CHUNK = 2000


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets skip leading spaces before a formula: " =1+1" runs too.
    return "'" + text if text.startswith(_DANGEROUS) or text.lstrip().startswith(_DANGEROUS) else text


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


async def import_rows_csv(
    actor: Actor, company_id: int, import_id: int, outcomes: tuple[str, ...]
) -> AsyncIterator[str]:
    """The import's rows with one of `outcomes`: line, cell as written, address read, reason."""
    await get_import(actor, company_id, import_id)
    yield "\ufeff" + csv_text([("Line", "Cell", "E-mail address", "Reason")])  # the BOM: Excel reads UTF-8
    chunk: list[tuple[Any, ...]] = []
    async for row in iter_rows(import_id, outcomes, CHUNK):
        chunk.append((row["line"], row["cell"], row["email"] or "", OUTCOME_LABELS.get(row["outcome"], "")))
        if len(chunk) >= CHUNK:
            yield csv_text(chunk)
            chunk = []
    if chunk:
        yield csv_text(chunk)


async def learners_csv(actor: Actor, company_id: int, now: datetime) -> AsyncIterator[str]:
    """A company's active users: name, e-mail, role, licence status, licence end date."""
    company = await get_company(actor, company_id)
    yield "\ufeff" + csv_text([("Name", "E-mail", "Role", "Status", "License ends")])
    after = ("", 0)
    while True:
        page = await User.raw(
            "SELECT id, name, email, role, licence_ends_at FROM portal_user "
            "WHERE company = {} AND portal_user.active AND (name > {} OR (name = {} AND id > {})) "
            f"ORDER BY name, id LIMIT {CHUNK}",
            company["id"],
            after[0],
            after[0],
            after[1],
        )
        if not page:
            return
        yield csv_text(
            (
                u["name"],
                u["email"],
                ROLE_LABELS.get(u["role"], u["role"]),
                STATUS_WORDS[licence_status(u["licence_ends_at"], now)],
                u["licence_ends_at"].strftime("%Y-%m-%d") if u["licence_ends_at"] else "",
            )
            for u in page
        )
        after = (page[-1]["name"], page[-1]["id"])


async def orders_csv(actor: Actor, filters: dict[str, Any]) -> AsyncIterator[str]:
    """Requested Orders as listed with `filters`: every matching order, not one page."""
    yield "\ufeff" + csv_text(
        [("Requested", "Customer", "License", "Quantity", "PO number", "Requested by", "Status", "Decided")]
    )
    async for chunk in order_list.iter_orders(actor, filters, CHUNK):
        yield csv_text(
            (
                f"{o['requested_at']:%Y-%m-%d %H:%M}",
                o["company_name"],
                o["product_name"],
                o["quantity"],
                o["po_number"] or "",
                o["requested_by_name"] or "",
                o["status"].capitalize(),
                f"{o['decided_at']:%Y-%m-%d %H:%M}" if o["decided_at"] else "",
            )
            for o in chunk
        )
