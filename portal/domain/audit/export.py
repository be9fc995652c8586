"""The audit log as a CSV download: the entries as filtered on screen, every
one of them, written a chunk at a time, safe to open in a spreadsheet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC
from typing import Any

from portal.domain.access import Actor
from portal.domain.audit.log import iter_entries
from portal.domain.imports.export import csv_text

COLUMNS = ("When (UTC)", "Who", "E-mail", "What", "Company", "Acting as", "Action")


async def entries_csv(actor: Actor, filters: Mapping[str, Any]) -> AsyncIterator[str]:
    yield "\ufeff" + csv_text([COLUMNS])
    async for rows in iter_entries(actor, filters):
        yield csv_text(
            (
                e["at"].astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                e["actor_name"] or "System",
                e["actor_email"] or "",
                e["sentence"],
                e["company_name"] or "",
                e["acting_as_name"] or "",
                e["action"],
            )
            for e in rows
        )
