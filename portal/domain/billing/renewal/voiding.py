"""What voiding a renewal invoice does to its subscription, said before and after
"Void" (the invoice page): a void invoice cannot be paid, so the renewal goes unpaid
(schedule.if_unpaid) unless a new invoice takes its place ("Void and reissue")."""

from __future__ import annotations

from portal.domain.billing.renewal import schedule
from portal.tables_billing import Subscription


async def if_voided(invoice: dict) -> schedule.Unpaid | None:
    """For a renewal invoice of its subscription's next term (an invoice row the caller
    may see); None for any other invoice, whose subscription voiding leaves as it is."""
    if invoice["kind"] != "renewal" or invoice["subscription"] is None:
        return None
    subscription = await Subscription.select().where(Subscription.id == invoice["subscription"]).first()
    if subscription is None or subscription["term_end"] != invoice["term_start"]:
        return None
    return schedule.if_unpaid(subscription)
