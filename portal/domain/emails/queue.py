"""Queue an e-mail of a kind with its fields (the outbox's row, in the caller's
transaction); portal/domain/emails/kinds.py lists the kinds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal import db
from portal.domain import outbox
from portal.domain.emails import content
from portal.domain.emails.kinds import get


def prepared(kind_name: str, data: dict[str, Any]) -> tuple[str, str, str]:
    """Subject and text as they would go now, and the fields as the row keeps
    them: for code that writes many rows at once."""
    kind = get(kind_name)
    content.check_fields(kind, data)
    subject, text = content.preview(kind, data)
    return subject, text, content.dumps(data)


async def queue_kind(
    kind_name: str, company_id: int | None, recipients: list[str], data: dict[str, Any], now: datetime, dedupe: str
) -> int:
    """One outbox row per recipient of an e-mail of `kind_name` with its fields,
    in the caller's transaction; `dedupe` names the event (queued twice, it is
    written once). Returns rows written. Rendered again when it goes."""
    if not recipients:
        return 0
    subject, text, data_json = prepared(kind_name, data)
    return await outbox.queue_email(kind_name, company_id, recipients, subject, text, now, dedupe, data=data_json)


class Batch:
    """Many e-mails of known kinds, written with one COPY: for set-based work that
    queues thousands at once (bulk renewals, automatic renewals). The caller's
    transaction holds them, as with queue_kind; `key` names the event per recipient."""

    _COLUMNS = (
        "kind",
        "company",
        "to_email",
        "subject",
        "body",
        "data",
        "created_at",
        "dedupe_key",
        "status",
        "attempts",
        "next_attempt_at",
    )

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.rows: list[tuple[Any, ...]] = []

    def add(self, kind_name: str, company_id: int, recipients: list[str], data: dict[str, Any], key: str) -> None:
        if recipients:
            subject, text, fields = prepared(kind_name, data)
            now = self.now
            self.rows.extend(
                (kind_name, company_id, to, subject, text, fields, now, f"{key}:{to}", "queued", 0, now)
                for to in recipients
            )

    async def write(self) -> None:
        await db.copy_rows("outbox_email", self._COLUMNS, self.rows)
