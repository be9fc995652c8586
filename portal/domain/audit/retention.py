"""How long the audit log is kept, and the sweep that deletes what is older.

A partner (or sub-partner) sets "Keep the audit log for" in months; the companies
under its wing follow it. Where several companies on the way up set a period,
the longest wins: a sub-partner may keep its log longer than its partner asks,
never shorter, since the partner's managers read the same entries. With no
setting on the way up, the log is kept DEFAULT_MONTHS.

MIN_MONTHS is a year because some entries are read by the portal's own rules for
up to a licence term after they were written (the staff cancellation that staff
may undo before the term ends; the claim an automatic renewal makes on a batch).
Two kinds of entry are never deleted, whatever their age: the claims that an
invoice's licenses were provided ("provision:<invoice>", read for as long as the
invoice and its subscription live) and that a batch was renewed automatically
("auto_renewal:<batch>"). They are one row per invoice or batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from piccolo.custom_types import Combinable

from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.audit.entries import record
from portal.domain.errors import ValidationFailed
from portal.tables import AuditEntry
from portal.tables.audit import AuditRetention

DEFAULT_MONTHS = 24
MIN_MONTHS = 12
MAX_MONTHS = 120
CHUNK = 1000
# Claims other rules read for as long as what they claim exists: never swept.
KEPT_FOREVER = ("provision:%", "auto_renewal:%")


@dataclass(frozen=True)
class Retention:
    months: int
    # The company whose setting this is (None: the default), and its name.
    set_by: int | None = None
    set_by_name: str = ""


def _ancestors(path: str) -> list[int]:
    return [int(part) for part in path.strip("/").split("/") if part]


async def _settings_on(path: str) -> list[dict[str, Any]]:
    return await AuditRetention.select(
        AuditRetention.company, AuditRetention.keep_months, AuditRetention.company.name.as_alias("name")
    ).where(AuditRetention.company.is_in(_ancestors(path)))


def _longest(rows: list[dict[str, Any]]) -> Retention:
    if not rows:
        return Retention(DEFAULT_MONTHS)
    # The longest; between equals, the nearest company (the deepest on the path).
    row = max(rows, key=lambda r: (r["keep_months"], r["company"]))
    return Retention(row["keep_months"], row["company"], row["name"])


async def for_path(company_path: str) -> Retention:
    """How long entries about the company at `company_path` are kept."""
    return _longest(await _settings_on(company_path))


async def save(actor: Actor, months: int, now: datetime) -> Retention:
    """A partner manager sets how long the log of their own company's wing is kept."""
    require_partner_manager(actor)
    require(actor, Capability.SETTINGS)
    above = _longest([r for r in await _settings_on(actor.company_path) if r["company"] != actor.company_id])
    low = max(MIN_MONTHS, above.months if above.set_by is not None else MIN_MONTHS)
    if not low <= months <= MAX_MONTHS:
        why = f" ({above.set_by_name} keeps it {above.months} months)" if low > MIN_MONTHS else ""
        raise ValidationFailed(
            {"keep_months": f"Keep the audit log for {low} to {MAX_MONTHS} months{why}: a whole number of months."}
        )
    await AuditRetention.insert(
        AuditRetention(company=actor.company_id, keep_months=months, updated_at=now, updated_by=actor.user_id)
    ).on_conflict(
        target=AuditRetention.company,
        action="DO UPDATE",
        values=[AuditRetention.keep_months, AuditRetention.updated_at, AuditRetention.updated_by],
    )
    await record(actor, "audit.retention.save", actor.company_id, now, {"months": months})
    return Retention(months, actor.company_id, actor.company_name)


# --- The sweep -------------------------------------------------------------------


async def delete_old(now: datetime, chunk: int = CHUNK) -> int:
    """Delete the entries older than their company's period, `chunk` at a time;
    returns how many. Safe to run twice at once: a row already gone is not counted."""
    rows = await AuditRetention.select(
        AuditRetention.company, AuditRetention.keep_months, AuditRetention.company.path.as_alias("path")
    )
    deleted = 0
    for row in rows:
        # The entries under this company and under no deeper company with a setting of its own.
        on_path = [r["keep_months"] for r in rows if row["path"].startswith(r["path"])]
        deeper = [r["path"] for r in rows if r["path"] != row["path"] and r["path"].startswith(row["path"])]
        where: Combinable = AuditEntry.company.path.like(row["path"] + "%")
        for path in deeper:
            where &= AuditEntry.company.path.not_like(path + "%")
        deleted += await _delete(where, now - relativedelta(months=max(on_path)), chunk)
    # Everywhere else (and entries about no company): the default.
    where_default: Combinable = AuditEntry.company.is_null()
    outside: Combinable = AuditEntry.company.is_not_null()
    for row in rows:
        outside &= AuditEntry.company.path.not_like(row["path"] + "%")
    deleted += await _delete(where_default | outside, now - relativedelta(months=DEFAULT_MONTHS), chunk)
    return deleted


async def _delete(where: Combinable, cutoff: datetime, chunk: int) -> int:
    where = where & (AuditEntry.at < cutoff)
    for pattern in KEPT_FOREVER:
        where &= AuditEntry.dedupe_key.is_null() | AuditEntry.dedupe_key.not_like(pattern)
    deleted = 0
    while True:
        ids = [r["id"] for r in await AuditEntry.select(AuditEntry.id).where(where).limit(chunk)]
        if not ids:
            return deleted
        gone = await AuditEntry.delete().where(AuditEntry.id.is_in(ids)).returning(AuditEntry.id)
        deleted += len(gone)
