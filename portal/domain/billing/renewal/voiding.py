"""What voiding an invoice does to its subscription, said before and after "Void" (the
invoice page): a void renewal invoice cannot be paid, so the renewal goes unpaid
(schedule.if_unpaid) unless a new invoice takes its place ("Void and reissue"); a void
purchase invoice never paid ends the purchase (unpaid_purchase)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal.domain.billing.renewal import schedule
from portal.tables import Company
from portal.tables.billing import Subscription, SubscriptionStatus


@dataclass(frozen=True)
class PurchaseEnds:
    """Voiding the invoice of a purchase never paid: its order is declined and its pending
    subscription ends, so the company may buy again."""

    company_name: str


async def if_voided(invoice: dict[str, Any]) -> schedule.Unpaid | PurchaseEnds | None:
    """For a renewal invoice of its subscription's next term, or the purchase invoice of a
    pending subscription (an invoice row the caller may see); None for any other
    invoice, whose subscription voiding leaves as it is."""
    if invoice["subscription"] is None or invoice["kind"] not in ("renewal", "purchase"):
        return None
    subscription = await Subscription.select().where(Subscription.id == invoice["subscription"]).first()
    if subscription is None:
        return None
    if invoice["kind"] == "purchase":
        if subscription["status"] != SubscriptionStatus.PENDING:
            return None
        company = await Company.select(Company.name).where(Company.id == subscription["company"]).first()
        return PurchaseEnds(company["name"] if company else "The customer")
    if subscription["term_end"] != invoice["term_start"]:
        return None
    return schedule.if_unpaid(subscription)
