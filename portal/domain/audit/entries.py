"""Writing the audit log: who did what, to which company, acting as which company.
What an entry says in words is portal/domain/audit/sentences.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain.access import Actor
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


async def record_sign_in(user_id: int, company_id: int, at: datetime, detail: dict[str, Any] | None = None) -> bool:
    """Idempotent, even when two runs of the job race: the dedupe key is unique.
    `detail` may say how ("method": "passkey") and from where ("ip"): the sentence
    reads them. Returns whether this call wrote the entry."""
    entry = AuditEntry(
        at=at,
        actor=user_id,
        company=company_id,
        action="sign_in",
        detail=detail or {},
        dedupe_key=f"sign_in:{user_id}:{at.isoformat()}",
    )
    written = await AuditEntry.insert(entry).on_conflict(action="DO NOTHING").returning(AuditEntry.id)
    return bool(written)
