"""The guides' reminder rule: a customer's managers get an
e-mail 72 hours before a licence batch ends and a notice on the day it ends;
the same for free-trial batches, with "Upgrade Now".

`sweep(now)` queues whatever is due at `now`, and may run any number of times,
at once on several workers, late or after downtime:
- one row per (kind, batch, manager), keyed `kind:batch:user` in the outbox's
  unique `dedupe_key`, so a second sweep (or a retried job) inserts nothing;
- a reminder is due while the batch has not ended and ends within 72 hours:
  a sweep that was down when the 72-hour mark passed still sends it, and
  never once the batch has ended;
- a notice is due once the batch has ended, for NOTICE_CATCH_UP after, so a
  sweep that was down on the day still sends it, but a first sweep on an old
  database does not mail about batches that ended long ago;
- managers who switched reminders off, and deactivated ones, are skipped;
- a batch whose term goes on is not said to end: one an online subscription will
  renew by itself (auto-renewal on, its term ending then), or one whose next term
  already starts at its end (a renewal paid early, or made by the job); if the
  renewal then fails, the billing e-mails say so (portal/domain/billing/).

One INSERT … SELECT per kind, so 20,000 batches cost four statements, not
20,000 round trips. The text is made when the e-mail goes
(portal/domain/notifications_content.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from portal import db
from portal.tables import Company

REMINDER_BEFORE = timedelta(hours=72)
NOTICE_CATCH_UP = timedelta(days=7)


@dataclass(frozen=True)
class Kind:
    name: str
    trial: bool
    ended: bool
    subject_sql: str  # over p (product) and c (company)


KINDS = (
    Kind("expiry_reminder", False, False, "p.name || ' for ' || c.name || ' ends within 72 hours'"),
    Kind("expiry_notice", False, True, "p.name || ' for ' || c.name || ' has ended'"),
    Kind("trial_reminder", True, False, "'Your free trial for ' || c.name || ' ends within 72 hours'"),
    Kind("trial_notice", True, True, "'Your free trial for ' || c.name || ' has ended: Upgrade Now'"),
)


_TERM_GOES_ON = (
    "AND NOT EXISTS (SELECT 1 FROM subscription s WHERE s.company = b.company AND s.term_end = b.ends_at "
    "AND s.status = 'active' AND s.auto_renew AND s.method = 'online') "
    "AND NOT EXISTS (SELECT 1 FROM licence_batch nb WHERE nb.company = b.company AND nb.starts_at = b.ends_at "
    "AND nb.product = b.product) "
)


def _statement(kind: Kind) -> str:
    ts = db.timestamp_param()
    trial = "p.is_trial" if kind.trial else f"NOT p.is_trial {_TERM_GOES_ON}"
    return (
        "INSERT INTO outbox_email (kind, company, to_email, subject, body, created_at, dedupe_key, "
        "status, batch, attempts, next_attempt_at) "
        f"SELECT '{kind.name}', b.company, u.email, {kind.subject_sql}, '', {ts}, "
        f"'{kind.name}:' || b.id || ':' || u.id, 'queued', b.id, 0, {ts} "
        "FROM licence_batch b "
        "JOIN product p ON p.id = b.product "
        "JOIN company c ON c.id = b.company "
        "JOIN portal_user u ON u.company = b.company "
        f"WHERE b.ends_at > {ts} AND b.ends_at <= {ts} AND {trial} "
        "AND u.role = 'manager' AND u.active AND NOT u.reminders_off "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
    )


def window(kind: Kind, now: datetime) -> tuple[datetime, datetime]:
    """Batches ending in (low, high] are due for `kind` at `now`."""
    if kind.ended:
        return now - NOTICE_CATCH_UP, now
    return now, now + REMINDER_BEFORE


async def sweep(now: datetime) -> dict[str, int]:
    """Queue every reminder and notice due at `now`; how many rows each kind wrote."""
    written = {}
    for kind in KINDS:
        low, high = window(kind, now)
        written[kind.name] = len(await Company.raw(_statement(kind), now, now, low, high))
    return written
