"""When renewals happen, and which term and users they are for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from portal.domain.billing import payments
from portal.tables.billing import SubscriptionStatus

# An online subscription is charged from this long before its term ends.
DUE_AHEAD = timedelta(days=1)
# Declined: tried again this long after the term's end; after the last, lapsed.
RETRIES_AFTER_END = (timedelta(days=2), timedelta(days=4), timedelta(days=7))
ATTEMPTS = 1 + len(RETRIES_AFTER_END)
# A claimed chunk is someone's for this long: the same lease as a pending charge's.
LEASE = payments.PENDING_LEASE
# Invoice subscriptions.
INVOICE_AHEAD = timedelta(days=30)
REMINDER_AHEAD = timedelta(hours=72)


def retry_at(term_end: datetime, attempt: int) -> datetime | None:
    """When the attempt after a declined `attempt` (1-based) is due; None after the last."""
    return term_end + RETRIES_AFTER_END[attempt - 1] if attempt < ATTEMPTS else None


def renewal_key(subscription: dict[str, Any]) -> str:
    """The one renewal invoice of a term: "renewal:<subscription>:<term end, ISO>"."""
    return f"renewal:{subscription['id']}:{subscription['term_end'].astimezone(UTC).isoformat()}"


def next_count(sub: dict[str, Any], name: str) -> int:
    """Fewer users asked for during the term take effect at the renewal."""
    later = sub[f"next_{name}"]
    return int(sub[name] if later is None else later)


@dataclass(frozen=True)
class Unpaid:
    """What follows when a running subscription's renewal is not paid (its invoice
    voided, say): online, the job's tries are declined and it lapses after the last;
    by invoice, nothing more is sent and it lapses at the term's end. Either way its
    licences end with the term."""

    method: str
    licences_end: datetime
    retries: tuple[datetime, ...]  # online: the tries still to come after the end
    lapses_at: datetime


def if_unpaid(subscription: dict[str, Any]) -> Unpaid | None:
    """None for a subscription that does not renew anyway (cancelled, not running)."""
    end = subscription["term_end"]
    if subscription["status"] != SubscriptionStatus.ACTIVE or not subscription["auto_renew"] or end is None:
        return None
    if subscription["method"] != "online":
        return Unpaid("invoice", end, (), end)
    # Attempt n (1-based) after the first comes RETRIES_AFTER_END[n - 2] after the end.
    first = max(2, subscription["renewal_attempts"] + 1)
    retries = tuple(end + RETRIES_AFTER_END[n - 2] for n in range(first, ATTEMPTS + 1))
    return Unpaid("online", end, retries, end + RETRIES_AFTER_END[-1])
