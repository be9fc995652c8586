"""Subscriptions (seed 000): buying one, and reading the live one.

One live (pending or active) subscription per company, checked under the
company's lock. Paying for it is settlement.py; changing it, changes.py;
cancelling, cancellation.py; the partner's list, subscription_list.py;
renewals, the renewal package."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, get_company
from portal.domain.billing import (
    accounts,
    cancellation,
    confirmations,
    invoices,
    locks,
    payments,
    profiles,
    quotes,
    settlement,
)
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing.quotes import Purchase, refuse_read_only
from portal.domain.errors import ValidationFailed
from portal.domain.orders import requests
from portal.tables import LicenceBatch
from portal.tables.billing import Invoice, InvoiceStatus, Subscription, SubscriptionStatus


async def _live(company_id: int) -> dict[str, Any] | None:
    return (
        await Subscription.select()
        .where((Subscription.company == company_id) & Subscription.status.is_in(list(quotes.LIVE)))
        .order_by(Subscription.id, ascending=False)
        .first()
    )


async def current_subscription(actor: Actor, company_id: int) -> dict[str, Any] | None:
    """The live one (pending/active), with its tier item, seats, batch, account,
    and the invoices still to pay."""
    company = await get_company(actor, company_id)
    subscription = await _live(company["id"])
    if subscription is None:
        return None
    items = {row["code"]: row for row in await billing_catalogue.items(subscription["partner"])}
    tier = items.get(subscription["tier"])
    next_extra = subscription["next_extra_users"]
    batch = None
    if subscription["batch"] is not None:
        batch = await LicenceBatch.select().where(LicenceBatch.id == subscription["batch"]).first()
    unpaid = (
        await Invoice.select(Invoice.id, Invoice.number, Invoice.kind, Invoice.total_cents, Invoice.currency)
        .where((Invoice.subscription == subscription["id"]) & (Invoice.status == InvoiceStatus.ISSUED))
        .order_by(Invoice.id)
    )
    for row in unpaid:
        row["label"] = invoices.format_invoice_number(row["number"])
    return {
        **subscription,
        "tier_item": tier,
        "seats": billing_catalogue.seats_of(tier, subscription["extra_users"]),
        "next_seats": None if next_extra is None else billing_catalogue.seats_of(tier, next_extra),
        "batch_row": batch,
        "account": accounts.without_token(await accounts.account_of(company["id"])),
        "unpaid_invoices": unpaid,
        "cancelled": not subscription["auto_renew"],
        "cancelled_by_staff": await cancellation.cancelled_by_staff(subscription),
    }


async def addons_bought(actor: Actor, company_id: int) -> list[dict[str, Any]]:
    """The add-ons the company has paid for (course, reports): the paid invoices'
    lines whose codes are add-ons of the seller's catalogue, newest first, each
    with its description, quantity, payment date and invoice ("label")."""
    company = await get_company(actor, company_id)
    rows = await Invoice.raw(
        "SELECT l.code, l.description, l.quantity, i.id AS invoice, i.number, i.paid_at FROM invoice AS i "
        "JOIN invoice_line AS l ON l.invoice = i.id "
        "JOIN catalogue_item AS c ON c.partner = i.partner AND c.code = l.code AND c.kind = 'addon' "
        "WHERE i.company = {} AND i.status = 'paid' ORDER BY i.paid_at DESC, i.id DESC, l.position",
        company["id"],
    )
    for row in rows:
        row["label"] = invoices.format_invoice_number(row["number"])
    return cast("list[dict[str, Any]]", rows)


async def read_only_allowance(company_id: int) -> int:
    """The read-only user credits of the company's active subscription (0 without):
    a pending one has paid for nothing yet."""
    row = (
        await Subscription.select(Subscription.read_only_users)
        .where((Subscription.company == company_id) & (Subscription.status == SubscriptionStatus.ACTIVE))
        .first()
    )
    return int(row["read_only_users"]) if row else 0


def _refuse_second(company: dict[str, Any]) -> ValidationFailed:
    return ValidationFailed(
        {"subscription": f"{company['name']} already has a subscription: change it under Billing → Subscriptions."}
    )


async def buy(
    actor: Actor,
    company_id: int,
    purchase: Purchase,
    now: datetime,
    *,
    quoted: quotes.Quoted | None = None,
    account: accounts.OnlineAccount | None = None,
    processor: payments.CardProcessor,
) -> dict[str, Any]:
    """One live subscription per company (checked under the company's lock).

    online: needs a saved card; the invoice is issued and charged (attempt 1):
    paid → the seats are provisioned and the subscription is active; declined →
    it stays pending with the invoice issued, nothing provisioned, and the
    reason returned. invoice: the invoice is issued with a licence order
    `requested` (Requested Orders); provisioned when the payment is recorded, or
    at once if the seller's profile assigns unpaid orders.

    `quoted`: the price the buyer saw and confirmed; if the price is another now, nothing
    is bought (ValidationFailed "price", quotes.check_price).
    `account`: a card and billing address typed on the quote page, saved with the
    purchase once it is allowed (a refused purchase saves nothing) and switching no
    other subscription to Pay Online.
    `processor`: the card processor that keeps the card and takes the payment.

    Returns {"subscription", "invoice", "charge": ChargeResult | None, "batch": … | None,
    "repeat"}; "repeat": this confirmation bought it before (confirmations.py), nothing more is done."""
    refuse_read_only(actor)
    company = await get_company(actor, company_id)
    done = await confirmations.earlier(company["id"], quoted)
    if done is not None:
        return await _bought_before(done)
    quote = await quotes.quote_purchase(actor, company_id, purchase, now)
    quotes.check_price(quoted, quote.totals)
    seller = await billing_catalogue.seller_of(company["id"])
    profile = await profiles.profile(seller["id"])
    tier = await billing_catalogue.item(seller["id"], purchase.tier)
    seats = billing_catalogue.seats_of(tier, purchase.extra_users)
    # Refused before the processor is asked to keep a card (checked again under the lock).
    if await _live(company["id"]) is not None:
        # …unless it is this confirmation's own purchase, committed since the look above.
        done = await confirmations.earlier(company["id"], quoted)
        if done is not None:
            return await _bought_before(done)
        raise _refuse_second(company)
    new_account = None
    if account is not None and purchase.method == "online":
        new_account = await accounts.prepare_online_account(actor, company["id"], account, now, processor=processor)
    token = None
    if purchase.method == "online":
        kept = new_account or await accounts.account_of(company["id"])
        token = kept["card_token"] if kept else None
        if not token:
            raise ValidationFailed({"card": accounts.NO_CARD})
    batch = None
    async with db.write_transaction():
        await locks.lock_company(company["id"])
        done = await confirmations.earlier(company["id"], quoted)
        if done is not None:
            return await _bought_before(done)
        if await _live(company["id"]) is not None:
            raise _refuse_second(company)
        if new_account is not None:
            await accounts.store_online_account(actor, company["id"], new_account, now, switch=False)
        subscription = (
            await Subscription.insert(
                Subscription(
                    company=company["id"],
                    company_path=company["path"],
                    partner=seller["id"],
                    tier=tier["code"],
                    extra_users=purchase.extra_users,
                    read_only_users=purchase.read_only_users,
                    method=purchase.method,
                    status=SubscriptionStatus.PENDING,
                    auto_renew=True,
                    created_at=now,
                    created_by=actor.user_id,
                )
            ).returning(*Subscription.all_columns())
        )[0]
        order = None
        if purchase.method == "invoice":
            order = await requests.request_order(actor, company["id"], seats, None, "", now)
        invoice = await invoices.create_invoice(
            partner_id=seller["id"],
            company_id=company["id"],
            kind="purchase",
            lines=quote.lines,
            now=now,
            subscription_id=subscription["id"],
            order_id=order["id"] if order else None,
            actor=actor,
            quoted=quoted,
        )
        await audit.record(
            actor,
            "subscription.buy",
            company["id"],
            now,
            {
                "subscription": subscription["id"],
                "invoice": invoice["id"],
                "tier": tier["code"],
                "extra_users": purchase.extra_users,
                "read_only_users": purchase.read_only_users,
                "addons": list(purchase.addons),
                "method": purchase.method,
                "total_cents": invoice["total_cents"],
                "currency": invoice["currency"],
            },
            dedupe_key=confirmations.dedupe_key(company["id"], quoted),
        )
        if purchase.method == "invoice" and profile["assign_unpaid"]:
            batch = await settlement.provision_invoice(invoice["id"], now, actor=actor, unpaid_ok=True)
    charge = None
    if token is not None:
        charge, batch, invoice = await settlement.charge_and_provision(actor, invoice, token, now, processor=processor)
    current = await Subscription.select().where(Subscription.id == subscription["id"]).first()
    return {"subscription": current, "invoice": invoice, "charge": charge, "batch": batch, "repeat": False}


async def _bought_before(done: dict[str, Any]) -> dict[str, Any]:
    invoice = done["invoice"]
    subscription = await Subscription.select().where(Subscription.id == invoice["subscription"]).first()
    return {"subscription": subscription, "invoice": invoice, "charge": None, "batch": None, "repeat": True}
