"""Idempotency-Key for the API's writes: the first request with a key acts, any
later one with the same key (of the same API key) does nothing and answers the
order the first one wrote. The key is held as an audit row with a unique
dedupe_key, taken inside the write's own transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from portal.domain.errors import ValidationFailed
from portal.tables import AuditEntry


@dataclass(frozen=True)
class Once:
    """One write under a key. `request` names it ("request", "assign" or "decline",
    the last two with their order), so that a key sent again with another request
    is refused rather than answered with the wrong order."""

    key_id: int
    user_id: int
    key: str
    request: str
    order_id: int | None = None

    @property
    def marker(self) -> str:
        return f"api:{self.key_id}:{self.key}"

    async def take(self, now: datetime) -> bool:
        """Whether this is the first request with the key. Taken in the caller's
        write transaction: of ten requests with one key at once, the first acts
        and the others wait for its commit (or rollback), then find it taken (or
        take it themselves). A refused write rolls its marker back with it."""
        taken = (
            await AuditEntry.insert(
                AuditEntry(
                    at=now,
                    actor=self.user_id,
                    company=None,  # set by done(): the id asked for may name no company of ours
                    action="api.idempotency",
                    detail={"key": self.key, "request": self.request},
                    dedupe_key=self.marker,
                )  # fmt: skip
            )
            .on_conflict(action="DO NOTHING")
            .returning(AuditEntry.id)
        )
        return bool(taken)

    async def done(self, order_id: int, company_id: int) -> None:
        await AuditEntry.update(
            {
                AuditEntry.detail: {"key": self.key, "request": self.request, "order": order_id},
                AuditEntry.company: company_id,
            }
        ).where(AuditEntry.dedupe_key == self.marker)

    async def earlier_order(self) -> int:
        """The order the first request with this key wrote."""
        entry = await AuditEntry.select(AuditEntry.detail).where(AuditEntry.dedupe_key == self.marker).first()
        detail = (json.loads(entry["detail"]) if isinstance(entry["detail"], str) else entry["detail"]) if entry else {}
        order_id = detail.get("order")
        if order_id is None:
            raise ValidationFailed(
                {"idempotency_key": "A request with this Idempotency-Key was refused; use a new key."}
            )
        # Markers written before requests were named were all of POST /orders.
        if detail.get("request", "request") != self.request or self.order_id not in (None, int(order_id)):
            raise ValidationFailed(
                {"idempotency_key": "This Idempotency-Key was sent with another request; use a new key."}
            )
        return int(order_id)
