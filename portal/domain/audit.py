"""The audit log: who did what, to which company, acting as which company."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.pages import Page, paginate
from portal.tables import AuditEntry


async def record(
    actor: Actor | None,
    action: str,
    company_id: int | None,
    now: datetime,
    detail: dict[str, Any] | None = None,
    *,
    actor_id: int | None = None,
    dedupe_key: str | None = None,
) -> None:
    await AuditEntry.insert(
        AuditEntry(
            at=now,
            actor=actor.user_id if actor else actor_id,
            acting_as=actor.managing_id if actor else None,
            company=company_id,
            action=action,
            detail=detail or {},
            dedupe_key=dedupe_key,
        )
    )


async def record_sign_in(user_id: int, company_id: int, at: datetime, method: str = "password") -> bool:
    """Idempotent, even when two runs of the job race: the dedupe key is unique.
    Returns whether this call wrote the entry. `method`: how the sign-in was
    completed (password, authenticator, recovery_code, passkey)."""
    entry = AuditEntry(
        at=at,
        actor=user_id,
        company=company_id,
        action="sign_in",
        detail={"method": method},
        dedupe_key=f"sign_in:{user_id}:{at.isoformat()}",
    )
    written = await AuditEntry.insert(entry).on_conflict(action="DO NOTHING").returning(AuditEntry.id)
    return bool(written)


async def list_entries(actor: Actor, page: int) -> Page:
    require_partner_manager(actor)
    where = under_wing(actor, AuditEntry.company.path)
    select = (
        AuditEntry.select(
            AuditEntry.at,
            AuditEntry.action,
            AuditEntry.detail,
            AuditEntry.actor.name.as_alias("actor_name"),
            AuditEntry.actor.email.as_alias("actor_email"),
            AuditEntry.company.name.as_alias("company_name"),
            AuditEntry.acting_as.name.as_alias("acting_as_name"),
        )
        .where(where)
        .order_by(AuditEntry.at, ascending=False)
        .order_by(AuditEntry.id, ascending=False)
    )
    return await paginate(select, AuditEntry.count().where(where), page)
