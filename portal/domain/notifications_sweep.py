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

Set-based: one query for the batches due, then an INSERT … SELECT per few
thousand batches, so 20,000 batches cost a handful of statements, not 20,000
round trips. Rows carry no text: it is made when the e-mail goes
(portal/domain/emails/content.py), subject included."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from portal import db
from portal.domain import partner_settings
from portal.domain.partner_settings import PartnerSettings
from portal.tables import Company

TRIAL_REMINDER_DAYS = 3
NOTICE_CATCH_UP = timedelta(days=7)
# Batches per INSERT … SELECT: four bound values each, under both engines' caps.
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


def _insert_sql(kind: str, rows: int, copies: bool) -> str:
    ts = db.timestamp_param()
    values = ", ".join(["(CAST({} AS integer), CAST({} AS integer), " + ts + ", {})"] * rows)
    # Copies go to the managers of the company above the customer (its seller).
    who = (
        "JOIN company c ON c.id = b.company JOIN portal_user u ON u.company = c.parent "
        if copies
        else "JOIN portal_user u ON u.company = b.company "
    )
    mark = "':cc:'" if copies else "':'"
    return (
        "INSERT INTO outbox_email (kind, company, to_email, subject, body, data, created_at, dedupe_key, "
        "status, batch, attempts, next_attempt_at) "
        f"SELECT '{kind}', b.company, u.email, '', '', due.column4, {ts}, "
        f"'{kind}:' || b.id || {mark} || u.id || ':' || due.column2, 'queued', b.id, 0, {ts} "
        f"FROM (VALUES {values}) AS due "
        "JOIN licence_batch b ON b.id = due.column1 "
        + who
        + "WHERE u.role = 'manager' AND u.active "
        + ("" if copies else "AND NOT u.reminders_off ")
        + "AND NOT EXISTS (SELECT 1 FROM outbox_email e WHERE e.batch = b.id "
        f"AND e.kind = '{kind}' AND e.to_email = u.email AND e.created_at >= due.column3) "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
    )


async def _queue(kind: str, due: list[Due], now: datetime) -> int:
    written = 0
    for copies in (False, True):
        chosen = [d for d in due if d.copy] if copies else due
        for start in range(0, len(chosen), _CHUNK):
            chunk = chosen[start : start + _CHUNK]
            # Bound in the order they appear: the select list's two instants, then the VALUES.
            args: list = [now, now]
            for d in chunk:
                args += [d.batch, d.days, d.since, json.dumps({"days": d.days})]
            written += len(await Company.raw(_insert_sql(kind, len(chunk), copies), *args))
    return written


async def _settings() -> dict[int, PartnerSettings]:
    return {s.set_by_company: s for _, s in await partner_settings.every_row() if s.set_by_company}


async def sweep(now: datetime) -> dict[str, int]:
    """Queue every reminder and notice due at `now`; how many rows each kind wrote."""
    saved = await _settings()
    longest = max([TRIAL_REMINDER_DAYS, *(d for s in saved.values() for d in s.reminder_days)])
    written = {}
    for kind, trial in (("expiry_reminder", False), ("trial_reminder", True)):
        rows = await Company.raw(_candidates_sql(trial), now, now + timedelta(days=longest))
        due = []
        for row in rows:
            settings = partner_settings.nearest(row["path"], saved)
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
                not trial and partner_settings.nearest(row["path"], saved).copy_account_managers,
            )
            for row in rows
        ]
        written[kind] = await _queue(kind, due, now)
    return written
