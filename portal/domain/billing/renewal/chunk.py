"""What a chunk of online renewals holds between its steps (claimed, charged, recorded)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

NO_CARD = "No card is saved on the billing account."


@dataclass
class Renewal:
    sub: dict[str, Any]
    invoice: dict[str, Any]
    attempt: int
    seats: int
    tier_name: str
    new_end: datetime
    # The next term as its invoice bills it (quotes.billed_term), which paying provisions.
    tier: str
    extra_users: int
    read_only_users: int
    token: str | None = None
    card_last4: str | None = None
    charge: dict[str, Any] | None = None  # the attempt's card_charge row
    outcome: str = "pending"  # paid | declined | pending (the processor did not answer)
    reference: str | None = None
    reason: str | None = None
    ask: bool = False  # this run asks the processor

    @property
    def old_end(self) -> datetime:
        return cast("datetime", self.sub["term_end"])


def id_list(ids: Any) -> str:
    return ", ".join(str(int(i)) for i in ids)
