"""E-mails queued in the same transaction as the change that causes them, and
their life after: queued → sent | captured | failed.

- sent: an SMTP server accepted it.
- captured: no SMTP_URL is set; the e-mail is kept here, readable in the portal.
- failed: the server refused it for good (5xx, a bad address), or it could not
  be delivered after MAX_ATTEMPTS tries; `error` holds the server's answer.

A delivery worker claims rows (portal/db.py `claim_outbox`): a token and a
lease. Every change after that names the token, so a worker whose lease ran out
and whose rows another worker took cannot overwrite that worker's result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from jinja2 import pass_context
from jinja2.runtime import Context
from piccolo.custom_types import Combinable

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, under_wing
from portal.domain.emails.kinds import LABELS
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.filters import Filter, FilterSet, as_date, as_int, day_end, day_start, one_of
from portal.domain.keyset import Keyset, KeysetPage
from portal.tables import ACCOUNT_ROLES, Company, OutboxEmail, User

STATUSES = ("queued", "sent", "captured", "failed")
# A claim lasts this long unless its worker renews it (a heartbeat while it
# delivers): a worker that died holding rows gives them up within this.
LEASE = timedelta(seconds=20)
MAX_ATTEMPTS = 20
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)


@pass_context
def link(context: Context, path: str) -> str:
    """An absolute link for an e-mail (the templates' `link`), from the `base_url`
    its render is given: where the portal is reached from outside, which whoever
    renders the e-mail has from its services. Given "" (an e-mail's preview while
    it waits, a partner's template being checked), the link is the path alone."""
    return f"{context['base_url']}{path}"


async def managers_of(company_id: int) -> list[str]:
    rows = await User.select(User.email).where(
        (User.company == company_id) & User.role.is_in(list(ACCOUNT_ROLES)) & (User.active == True)  # noqa: E712
    )
    return [row["email"] for row in rows]


async def queue_email(
    kind: str,
    company_id: int | None,
    recipients: list[str],
    subject: str,
    body: str,
    now: datetime,
    dedupe: str,
    *,
    html: str | None = None,
    data: str | None = None,
) -> int:
    """One outbox row per recipient; `dedupe` names the event, so queuing the same
    event twice (a retried job) queues nothing more. Returns rows written.
    With `data` (a kind's fields, portal/domain/emails/), the e-mail is rendered
    from its kind's templates when it goes; without, it goes with `body`, its
    HTML part made from it."""
    if not recipients:
        return 0
    rows = [
        OutboxEmail(
            kind=kind,
            company=company_id,
            to_email=to,
            subject=subject,
            body=body,
            html=html,
            data=data,
            created_at=now,
            next_attempt_at=now,
            status="queued",
            dedupe_key=f"{dedupe}:{to}",
        )
        for to in recipients
    ]
    written = await OutboxEmail.insert(*rows).on_conflict(action="DO NOTHING").returning(OutboxEmail.id)
    return len(written)


# --- Delivery: what a worker records ------------------------------------------


async def claim(now: datetime, token: str, limit: int, lease: timedelta = LEASE) -> list[dict[str, Any]]:
    return await db.claim_outbox(now, now + lease, token, limit)


async def extend_claim(token: str, now: datetime, lease: timedelta = LEASE) -> int:
    """Renew the lease of the rows a worker still holds under `token`; how many.
    Committed lazily: a renewal lost in a database crash only lets the rows be
    taken again sooner."""
    renewed = await (
        OutboxEmail.update({OutboxEmail.claimed_until: now + lease})
        .where(db.commit_lazily((OutboxEmail.claim_token == token) & (OutboxEmail.status == "queued")))
        .returning(OutboxEmail.id)
    )
    return len(renewed)


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … at most an hour: 20 attempts span about 13 hours."""
    return cast("timedelta", min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Content:
    """An e-mail as it goes out."""

    subject: str
    text: str
    html: str
    sender: str | None = None  # the From header
    reply_to: str | None = None
    # Set when the e-mail must not go any more (a reminder whose licences have
    # ended meanwhile: the expiry notice says it instead); the row fails with it.
    withdrawn: str | None = None


def _mine(row_id: int, token: str) -> Combinable:
    return (OutboxEmail.id == row_id) & (OutboxEmail.claim_token == token)


async def finish(
    row_id: int, token: str, status: str, now: datetime, content: Content, error: str | None = None, lazy: bool = False
) -> bool:
    """Record the end of a claimed row (sent, captured or failed) with the content
    as it went out. False if the claim was lost meanwhile (lease expired).

    `lazy`: commit without waiting for the disk (portal/db.py `commit_lazily`).
    For "sent": if the database server crashed before writing it, the row goes
    again, as when a worker dies right after the SMTP server accepted it."""
    assert status in ("sent", "captured", "failed")
    done = (
        await OutboxEmail.update(
            {
                OutboxEmail.status: status,
                OutboxEmail.sent_at: now if status != "failed" else None,
                OutboxEmail.subject: content.subject[:300],
                OutboxEmail.body: content.text,
                OutboxEmail.html: content.html,
                OutboxEmail.sender: (content.sender or "")[:300] or None,
                OutboxEmail.reply_to: content.reply_to,
                OutboxEmail.error: error,
                OutboxEmail.claim_token: None,
                OutboxEmail.claimed_until: None,
            }
        )
        .where(db.commit_lazily(_mine(row_id, token)) if lazy else _mine(row_id, token))
        .returning(OutboxEmail.id)
    )
    return bool(done)


async def try_later(row: dict[str, Any], token: str, now: datetime, error: str) -> str:
    """A transient failure (server down, 4xx): back in the queue after a growing
    delay, or failed once MAX_ATTEMPTS are spent. Returns the new status."""
    if row["attempts"] >= MAX_ATTEMPTS:
        await OutboxEmail.update(
            {
                OutboxEmail.status: "failed",
                OutboxEmail.error: f"Gave up after {row['attempts']} attempts: {error}",
                OutboxEmail.claim_token: None,
                OutboxEmail.claimed_until: None,
            }
        ).where(_mine(row["id"], token))
        return "failed"
    await OutboxEmail.update(
        {
            OutboxEmail.next_attempt_at: now + retry_delay(row["attempts"]),
            OutboxEmail.error: error,
            OutboxEmail.claim_token: None,
            OutboxEmail.claimed_until: None,
        }
    ).where(_mine(row["id"], token))
    return "queued"


async def backlog(now: datetime) -> dict[str, Any]:
    """For operators: how many e-mails wait, and how long the oldest has waited."""
    queued = await OutboxEmail.count().where(OutboxEmail.status == "queued")
    oldest = (
        await OutboxEmail.select(OutboxEmail.created_at)
        .where(OutboxEmail.status == "queued")
        .order_by(OutboxEmail.id)
        .first()
    )
    age = (now - oldest["created_at"]) if oldest else None
    return {"queued": queued, "oldest_age": age}


def describe_age(age: timedelta | None) -> str:
    if age is None:
        return "none waiting"
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# --- The Notifications page ----------------------------------------------------


EMAIL_FILTERS = FilterSet(
    Filter("status", "Status", "select", one_of(STATUSES), lambda v: OutboxEmail.status == v),
    Filter("kind", "Kind", "select", one_of(LABELS), lambda v: OutboxEmail.kind == v),
    Filter("company", "Company", "select", as_int, lambda v: OutboxEmail.company == v),
    Filter("day_from", "Queued from", "date", as_date, lambda v: OutboxEmail.created_at >= day_start(v)),
    Filter("day_to", "Queued until", "date", as_date, lambda v: OutboxEmail.created_at < day_end(v)),
)


_LIST_COLUMNS = (
    OutboxEmail.id,
    OutboxEmail.kind,
    OutboxEmail.to_email,
    OutboxEmail.subject,
    OutboxEmail.status,
    OutboxEmail.error,
    OutboxEmail.attempts,
    OutboxEmail.created_at,
    OutboxEmail.sent_at,
    OutboxEmail.company.as_alias("company_id"),
    OutboxEmail.company.name.as_alias("company_name"),
    # What a waiting reminder's subject is made from (it has none until it goes).
    OutboxEmail.company,
    OutboxEmail.batch,
    OutboxEmail.data,
    OutboxEmail.body,
)


def emails_keyset(actor: Actor, secret: bytes) -> Keyset:
    """Notifications' order: the newest queued first, then the newest id; its
    cursors are good in the actor's wing only."""
    return Keyset(OutboxEmail.created_at, OutboxEmail.id, secret, scope=f"notifications:{actor.company_path}")


async def list_emails(
    actor: Actor, cursor: str | None, secret: bytes, filters: Mapping[str, Any] | None = None
) -> KeysetPage[dict[str, Any]]:
    """E-mails about companies the actor may see, newest first, narrowed by
    the filters (values of EMAIL_FILTERS, by name), a page from `cursor` (signed
    with `secret`; edited or another list's: the first page). Partner managers
    see the e-mails of every company under their wing; a customer manager's wing
    is their own company."""
    where = EMAIL_FILTERS.where(filters or {}, under_wing(actor, OutboxEmail.company.path))
    walk = emails_keyset(actor, secret)
    total = await OutboxEmail.count().where(where)
    return await walk.page(lambda: OutboxEmail.select(*_LIST_COLUMNS).where(where), total, walk.decode(cursor))


async def get_email(actor: Actor, email_id: int) -> dict[str, Any]:
    row = (
        await OutboxEmail.select(
            *OutboxEmail.all_columns(exclude=[OutboxEmail.claim_token]),
            OutboxEmail.company.name.as_alias("company_name"),
        )
        .where((OutboxEmail.id == email_id) & under_wing(actor, OutboxEmail.company.path))
        .first()
    )
    if row is None:
        raise NotFound("No such e-mail.")
    return row


async def resend(actor: Actor, email_id: int, now: datetime) -> int:
    """Queue a copy of a failed or captured e-mail, as it was (audited). A
    second click queues a second copy only after the first has gone. A kind's
    e-mail is copied with its fields, so the copy is rendered as the original
    was: one that never went keeps only its preview, whose links are paths."""
    row = await get_email(actor, email_id)
    if row["status"] not in ("failed", "captured"):
        raise ValidationFailed(
            {"status": f"Only an e-mail that failed or was not sent can be sent again; this one is {row['status']}."}
        )
    copies = await OutboxEmail.count().where((OutboxEmail.resent_from == email_id) & (OutboxEmail.status == "queued"))
    if copies:
        raise ValidationFailed({"status": "A copy of this e-mail is already waiting to be sent."})
    async with db.write_transaction():
        new = await OutboxEmail.insert(
            OutboxEmail(
                kind=row["kind"],
                company=row["company"],
                to_email=row["to_email"],
                subject=row["subject"],
                body=row["body"],
                html=row["html"],
                data=row["data"],
                batch=row["batch"],
                created_at=now,
                next_attempt_at=now,
                status="queued",
                resent_from=email_id,
            )
        ).returning(OutboxEmail.id)
        await audit.record(
            actor, "email.resend", row["company"], now, {"email": email_id, "copy": new[0]["id"], "to": row["to_email"]}
        )
    return cast("int", new[0]["id"])


async def filter_companies(actor: Actor) -> list[dict[str, Any]]:
    """The companies that have e-mails, for the Company filter."""
    with_emails = OutboxEmail.select(OutboxEmail.company).where(under_wing(actor, OutboxEmail.company.path)).distinct()
    return await Company.select(Company.id, Company.name).where(Company.id.is_in(with_emails)).order_by(Company.name)


async def release(row_ids: list[int], token: str) -> None:
    """Give back claimed rows not tried (the worker ran short of its lease): due
    again at once, the attempt not counted."""
    if row_ids:
        await OutboxEmail.update(
            {
                OutboxEmail.claim_token: None,
                OutboxEmail.claimed_until: None,
                OutboxEmail.attempts: OutboxEmail.attempts - 1,
            }
        ).where(OutboxEmail.id.is_in(row_ids) & (OutboxEmail.claim_token == token))
