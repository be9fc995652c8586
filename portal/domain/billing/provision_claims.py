"""The proof that what a paid invoice pays for was provisioned: one audit entry
"subscription.provision" keyed `provision:<invoice>`, written in the transaction
that makes the seats. The key is unique, so whoever writes it first (a payment,
the renewal job, the tick taking up what a crash left) provisions, and every
other path, in the same transaction or a later one, finds it taken."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portal.domain.access import Actor
from portal.tables import AuditEntry

ACTION = "subscription.provision"
# Rows per INSERT: far below asyncpg's 32,767 parameters at 7 columns a row.
_ROWS_PER_STATEMENT = 1_000


# In SQL, of an invoice aliased `i`: no claim written for it yet.
UNCLAIMED_SQL = "NOT EXISTS (SELECT 1 FROM audit_entry AS a WHERE a.dedupe_key = 'provision:' || CAST(i.id AS TEXT))"


def provision_key(invoice_id: int) -> str:
    return f"provision:{invoice_id}"


@dataclass(frozen=True)
class Claim:
    """A claim on one invoice (a row with id, company, kind, total_cents, currency);
    `detail` adds to what the audit entry says about it."""

    invoice: dict[str, Any]
    actor: Actor | None = None
    detail: dict[str, Any] = field(default_factory=dict)


async def claim(claims: Sequence[Claim], now: datetime) -> set[int]:
    """Write the claims, inside the caller's transaction; returns the ids of the
    invoices whose claim this call wrote (the others were provisioned already)."""
    won: set[int] = set()
    for start in range(0, len(claims), _ROWS_PER_STATEMENT):
        rows = [_entry(c, now) for c in claims[start : start + _ROWS_PER_STATEMENT]]
        written = await AuditEntry.insert(*rows).on_conflict(action="DO NOTHING").returning(AuditEntry.dedupe_key)
        won |= {int(row["dedupe_key"].removeprefix("provision:")) for row in written}
    return won


def _entry(claim: Claim, now: datetime) -> AuditEntry:
    invoice = claim.invoice
    return AuditEntry(
        at=now,
        actor=claim.actor.user_id if claim.actor else None,
        acting_as=claim.actor.managing_id if claim.actor else None,
        company=invoice["company"],
        action=ACTION,
        detail={
            "invoice": invoice["id"],
            "kind": invoice["kind"],
            "total_cents": invoice["total_cents"],
            "currency": invoice["currency"],
            **claim.detail,
        },
        dedupe_key=provision_key(invoice["id"]),
    )
