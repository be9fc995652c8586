"""E-mails queued in the same transaction as the change that causes them."""

from __future__ import annotations

from datetime import datetime

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.pages import Page, paginate
from portal.settings import get_settings
from portal.tables import OutboxEmail, User


def link(path: str) -> str:
    return f"{get_settings().base_url}{path}"


async def managers_of(company_id: int) -> list[str]:
    rows = await User.select(User.email).where(
        (User.company == company_id) & (User.role == "manager") & (User.active == True)  # noqa: E712
    )
    return [row["email"] for row in rows]


async def queue_email(
    kind: str, company_id: int, recipients: list[str], subject: str, body: str, now: datetime, dedupe: str
) -> int:
    """One outbox row per recipient; `dedupe` names the event, so queuing the same
    event twice (a retried job) queues nothing more. Returns rows written."""
    if not recipients:
        return 0
    rows = [
        OutboxEmail(
            kind=kind,
            company=company_id,
            to_email=to,
            subject=subject,
            body=body,
            created_at=now,
            dedupe_key=f"{dedupe}:{to}",
        )
        for to in recipients
    ]
    written = await OutboxEmail.insert(*rows).on_conflict(action="DO NOTHING").returning(OutboxEmail.id)
    return len(written)


async def list_emails(actor: Actor, page: int) -> Page:
    """Queued and sent e-mails about companies under the wing, newest first."""
    require_partner_manager(actor)
    where = under_wing(actor, OutboxEmail.company.path)
    select = (
        OutboxEmail.select(
            OutboxEmail.id,
            OutboxEmail.kind,
            OutboxEmail.to_email,
            OutboxEmail.subject,
            OutboxEmail.body,
            OutboxEmail.created_at,
            OutboxEmail.sent_at,
            OutboxEmail.company.name.as_alias("company_name"),
        )
        .where(where)
        .order_by(OutboxEmail.id, ascending=False)
    )
    return await paginate(select, OutboxEmail.count().where(where), page)
