"""A seller's billing settings: currency, tax rate, whether invoice orders may be
assigned before they are paid. One row per partner or sub-partner, created with
the defaults the first time it is asked for; it also holds the invoice counter
(portal/domain/billing/invoices.py takes numbers from it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, get_company, require, require_partner_manager
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import CompanyKind
from portal.tables.billing import BillingProfile, Invoice, InvoiceStatus, Subscription, SubscriptionStatus

# Those a seller may pick; format_money shows a symbol for the first three.
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD")
MAX_TAX_RATE_BP = 10_000


async def profile(partner_id: int) -> dict[str, Any]:
    """The seller's profile; two first reads at once create one row (unique company)."""
    row = await BillingProfile.select().where(BillingProfile.company == partner_id).first()
    if row is None:
        await BillingProfile.insert(BillingProfile(company=partner_id)).on_conflict(action="DO NOTHING")
        row = await BillingProfile.select().where(BillingProfile.company == partner_id).first()
        assert row is not None, "just written, or written by the other first read"
    return row


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


async def _refuse_currency_in_use(partner_id: int, currency: str) -> None:
    """Renewals are billed in the seller's currency and unpaid invoices were issued in
    it: changing it under live subscriptions would renew them in another currency."""
    live = await Subscription.count().where(
        (Subscription.partner == partner_id)
        & Subscription.status.is_in([SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE])
    )
    unpaid = await Invoice.count().where((Invoice.partner == partner_id) & (Invoice.status == InvoiceStatus.ISSUED))
    if live or unpaid:
        raise ValidationFailed(
            {
                "currency": f"The currency stays {currency} while "
                f"{_plural(live, 'subscription is', 'subscriptions are')} live and "
                f"{_plural(unpaid, 'invoice is', 'invoices are')} unpaid in it: their renewals and payments are in "
                f"{currency}. Change it once they have ended and been paid."
            }
        )


async def save_profile(
    actor: Actor, partner_id: int, *, currency: str, tax_rate_bp: int, assign_unpaid: bool, now: datetime
) -> dict[str, Any]:
    """A partner manager's settings for what it sells. Invoices already issued
    keep the currency and tax rate they were issued with; the currency changes only
    while no subscription of its customers is live and no invoice unpaid."""
    require_partner_manager(actor)
    require(actor, Capability.INVOICES)
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change anything.")
    seller = await get_company(actor, partner_id)
    if seller["kind"] == CompanyKind.CUSTOMER:
        raise NotFound("No such seller.")
    errors: dict[str, str] = {}
    currency = currency.strip().upper()
    if currency not in CURRENCIES:
        errors["currency"] = f"Choose one of {', '.join(CURRENCIES)}."
    if not 0 <= tax_rate_bp <= MAX_TAX_RATE_BP:
        errors["tax_rate_bp"] = "Enter a tax rate from 0 to 100 %."
    if errors:
        raise ValidationFailed(errors)
    await profile(partner_id)
    async with db.write_transaction():
        # The row's lock: a purchase issuing its invoice (which takes it too) waits, or is counted.
        before = await db.for_update(BillingProfile.select().where(BillingProfile.company == partner_id)).first()
        assert before is not None, "profile() writes it"
        if currency != before["currency"]:
            await _refuse_currency_in_use(partner_id, before["currency"])
        await BillingProfile.update(
            {
                BillingProfile.currency: currency,
                BillingProfile.tax_rate_bp: tax_rate_bp,
                BillingProfile.assign_unpaid: assign_unpaid,
            }
        ).where(BillingProfile.company == partner_id)
        await audit.record(
            actor,
            "billing.profile.save",
            partner_id,
            now,
            {
                "currency": currency,
                "tax_rate_bp": tax_rate_bp,
                "assign_unpaid": assign_unpaid,
                "old_currency": before["currency"],
                "old_tax_rate_bp": before["tax_rate_bp"],
                "old_assign_unpaid": before["assign_unpaid"],
            },
        )
    return {**before, "currency": currency, "tax_rate_bp": tax_rate_bp, "assign_unpaid": assign_unpaid}
