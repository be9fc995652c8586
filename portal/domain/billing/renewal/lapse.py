"""The end of a term with nothing to follow it."""

from __future__ import annotations

from datetime import datetime

from portal import db
from portal.domain.billing.renewal import notices, schedule
from portal.tables import Company


async def lapse_unpaid(now: datetime) -> int:
    """Subscriptions whose term has ended with nothing to follow it: a cancelled
    one ends; an unpaid one lapses (an online one once its retries are spent,
    which renew_due does itself; an invoice one at its end), its managers
    e-mailed. Their seats already stopped at the term's end: the batches end
    there and no batch was made for a next term. Returns how many changed."""
    async with db.write_transaction():
        ended = await Company.raw(
            "UPDATE subscription SET status = 'ended', next_charge_at = NULL WHERE status = 'active' "
            "AND NOT auto_renew AND term_end IS NOT NULL AND term_end <= {} RETURNING id, company",
            now,
        )
        lapsed = await Company.raw(
            "UPDATE subscription SET status = 'lapsed', next_charge_at = NULL WHERE status = 'active' AND auto_renew "
            "AND term_end IS NOT NULL AND term_end <= {} "
            "AND (method = 'invoice' OR renewal_attempts >= {}) RETURNING *",
            now,
            schedule.ATTEMPTS,
        )
        names = await notices.company_names({s["company"] for s in lapsed})
        managers = await notices.managers_by_company({s["company"] for s in lapsed})
        for sub in lapsed:
            await notices.lapsed_mail(sub, names[sub["company"]], managers[sub["company"]], now, reason=None)
        await notices.audit_many(
            now,
            [("subscription.end", s["company"], {"subscription": s["id"]}) for s in ended]
            + [
                ("subscription.lapse", s["company"], {"subscription": s["id"], "term_end": s["term_end"].isoformat()})
                for s in lapsed
            ],
        )
    return len(ended) + len(lapsed)
