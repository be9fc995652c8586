"""The reminder rule: a customer's managers get an e-mail on each of the days
before a licence batch ends that its partner chose (by default the guides' 72
hours) and a notice on the day it ends; free-trial batches get the guides' 72
hours and the notice, with "Upgrade Now". A partner may have its account
managers copied (portal/domain/partner_settings.py, inherited down the tree).

`sweep(now)` queues whatever is due at `now`, and may run any number of times,
at once on several workers, late or after downtime:
- a batch's schedule cuts the time before its end into stretches, one per
  chosen day ("7,3": from 7 days before to 3 days before, then from 3 days
  before to the end); in each stretch its managers get one reminder, the first
  sweep in it sends it, so a sweep that was down when a mark passed still
  sends it (only the latest, not every one missed) and none goes once the
  batch has ended;
- once per stretch: a row for (batch, manager) queued since the stretch began
  stops another, so a schedule changed midway neither sends a stretch twice
  nor skips the stretch the batch is in; the outbox's unique `dedupe_key`
  (`kind:batch:user:days`) stops two sweeps at once;
- a notice is due once the batch has ended, for NOTICE_CATCH_UP after, so a
  sweep that was down on the day still sends it, but a first sweep on an old
  database does not mail about batches that ended long ago;
- managers who switched reminders off, and deactivated ones, are skipped;
- a batch whose term goes on is not said to end: one an online subscription will
  renew by itself (auto-renewal on, its term ending then), or one whose next term
  already starts at its end (a renewal paid early, or made by the job); if the
  renewal then fails, the billing e-mails say so (portal/domain/billing/).

Set-based: a query for the batches due, one for their managers, one for what
was already sent about them, then one INSERT of the rows from arrays (a
VALUES list per 4,000 rows on SQLite): 20,000 batches cost a handful of
statements, not 20,000 round trips. Rows carry no text: it is made when the e-mail goes
(portal/domain/emails/content.py), subject included."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from portal import db
from portal.domain import partner_settings
from portal.domain.partner_settings import PartnerSettings
from portal.tables import ACCOUNT_ROLES_SQL, Company

TRIAL_REMINDER_DAYS = 3
NOTICE_CATCH_UP = timedelta(days=7)
# Rows per statement on SQLite (five bound values each, under its cap) and
# batches per look-up of what was sent.
_CHUNK = 4_000


@dataclass(frozen=True)
class Due:
    batch: int
    days: int  # 0: the notice
    since: datetime  # when its stretch began
    copy: bool  # the partner's account managers get a copy


_TERM_GOES_ON = (
    "AND NOT EXISTS (SELECT 1 FROM subscription s WHERE s.company = b.company AND s.term_end = b.ends_at "
    "AND s.status = 'active' AND s.auto_renew AND s.method = 'online') "
    "AND NOT EXISTS (SELECT 1 FROM licence_batch nb WHERE nb.company = b.company AND nb.starts_at = b.ends_at "
    "AND nb.product = b.product) "
)


def _candidates_sql(trial: bool) -> str:
    ts = db.timestamp_param()
    which = "p.is_trial" if trial else f"NOT p.is_trial {_TERM_GOES_ON}"
    return (
        "SELECT b.id, b.ends_at, c.path FROM licence_batch b "
        "JOIN product p ON p.id = b.product JOIN company c ON c.id = b.company "
        f"WHERE b.ends_at > {ts} AND b.ends_at <= {ts} AND {which}"
    )


def step(ends_at: datetime, now: datetime, days: Iterable[int]) -> int | None:
    """The chosen day whose stretch `now` is in (the smallest day not yet
    passed), or None before the first."""
    left = ends_at - now
    due = [d for d in days if left <= timedelta(days=d)]
    return min(due) if due else None


async def _managers(company_ids: set[int], reminded: bool) -> dict[int, list[tuple[int, str]]]:
    """Company → its active managers (id, address); `reminded`: only those who
    did not switch reminders off (copies go to account managers whatever)."""
    if not company_ids:
        return {}
    ids_sql, ids = db.rows_table(("int",), [(i,) for i in sorted(company_ids)])
    rows = await Company.raw(
        f"SELECT u.id, u.email, u.company FROM portal_user u JOIN {ids_sql} AS c ON c.column1 = u.company "
        f"WHERE u.role IN {ACCOUNT_ROLES_SQL} AND u.active" + (" AND NOT u.reminders_off" if reminded else ""),
        *ids,
    )
    found: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        found[row["company"]].append((row["id"], row["email"]))
    return found


async def _sent(kind: str, batch_ids: list[int]) -> dict[tuple[int, str], datetime]:
    """(batch, address) → when the latest e-mail of `kind` about it was queued."""
    latest: dict[tuple[int, str], datetime] = {}
    for start in range(0, len(batch_ids), _CHUNK):
        ids_sql, ids = db.rows_table(("int",), [(i,) for i in batch_ids[start : start + _CHUNK]])
        for row in await Company.raw(
            f"SELECT e.batch, e.to_email, e.created_at FROM outbox_email e JOIN {ids_sql} AS d ON d.column1 = e.batch "
            f"WHERE e.kind = '{kind}'",
            *ids,
        ):
            key = (row["batch"], row["to_email"])
            if key not in latest or row["created_at"] > latest[key]:
                latest[key] = row["created_at"]
    return latest


def _insert_sql(kind: str, rows_sql: str) -> str:
    ts = db.timestamp_param()
    return (
        "INSERT INTO outbox_email (kind, company, to_email, subject, body, data, created_at, dedupe_key, "
        "status, batch, attempts, next_attempt_at) "
        f"SELECT '{kind}', r.column1, r.column2, '', '', r.column3, {ts}, r.column4, 'queued', r.column5, 0, {ts} "
        # WHERE: SQLite would read the ON of the upsert as a join's without it.
        f"FROM {rows_sql} AS r WHERE true ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
    )


@cache
def _fields(days: int) -> str:
    return json.dumps({"days": days})


async def _queue(kind: str, due: list[Due], now: datetime) -> int:
    """Rows for each due batch's managers (and the account managers copied),
    less those already sent an e-mail of `kind` about it since its stretch
    began. Decided here rather than by a NOT EXISTS in the INSERT: the planner,
    seeing a small outbox, would scan it again for every row while the
    statement makes it grow."""
    if not due:
        return 0
    company_of: dict[int, tuple[int, int | None]] = {}
    for start in range(0, len(due), _CHUNK):
        ids_sql, ids = db.rows_table(("int",), [(d.batch,) for d in due[start : start + _CHUNK]])
        for row in await Company.raw(
            "SELECT b.id, b.company, c.parent FROM licence_batch b JOIN company c ON c.id = b.company "
            f"JOIN {ids_sql} AS d ON d.column1 = b.id",
            *ids,
        ):
            company_of[row["id"]] = (row["company"], row["parent"])
    customers = await _managers({c for c, _ in company_of.values()}, reminded=True)
    above = await _managers({p for d in due if d.copy and (p := company_of[d.batch][1])}, reminded=False)
    sent = await _sent(kind, [d.batch for d in due])
    rows = []
    for d in due:
        company, parent = company_of[d.batch]
        to = [(u, email, ":") for u, email in customers.get(company, [])]
        if d.copy and parent is not None:
            to += [(u, email, ":cc:") for u, email in above.get(parent, [])]
        for user, email, mark in to:
            last = sent.get((d.batch, email))
            if last is None or last < d.since:
                rows.append((company, email, _fields(d.days), f"{kind}:{d.batch}{mark}{user}:{d.days}", d.batch))
    written = 0
    chunk = db.rows_per_statement(5)
    for start in range(0, len(rows), chunk):
        rows_sql, values = db.rows_table(("int", "text", "text", "text", "int"), rows[start : start + chunk])
        # Bound in the order they appear: the select list's two instants, then the rows.
        written += len(await Company.raw(_insert_sql(kind, rows_sql), now, now, *values))
    return written


async def _settings() -> dict[int, PartnerSettings]:
    return {s.set_by_company: s for _, s in await partner_settings.every_row() if s.set_by_company}


async def sweep(now: datetime) -> dict[str, int]:
    """Queue every reminder and notice due at `now`; how many rows each kind wrote."""
    saved = await _settings()
    longest = max([TRIAL_REMINDER_DAYS, *(d for s in saved.values() for d in s.reminder_days)])
    # Many batches share a company: each path's settings looked up once.
    nearest = cache(lambda path: partner_settings.nearest(path, saved))
    written = {}
    for kind, trial in (("expiry_reminder", False), ("trial_reminder", True)):
        rows = await Company.raw(_candidates_sql(trial), now, now + timedelta(days=longest))
        due = []
        for row in rows:
            settings = nearest(row["path"])
            days = (TRIAL_REMINDER_DAYS,) if trial else settings.reminder_days
            d = step(row["ends_at"], now, days)
            if d is not None:
                copy = settings.copy_account_managers and not trial
                due.append(Due(row["id"], d, row["ends_at"] - timedelta(days=d), copy))
        written[kind] = await _queue(kind, due, now)
    for kind, trial in (("expiry_notice", False), ("trial_notice", True)):
        rows = await Company.raw(_candidates_sql(trial), now - NOTICE_CATCH_UP, now)
        due = [
            Due(
                row["id"],
                0,
                row["ends_at"],
                not trial and nearest(row["path"]).copy_account_managers,
            )
            for row in rows
        ]
        written[kind] = await _queue(kind, due, now)
    return written
