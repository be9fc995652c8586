"""Subscriptions (seed 000): buy, change, cancel, record payments.

One live (pending or active) subscription per company, checked under the
company's lock. What an invoice pays for is provisioned once, by
`provision_invoice`, whichever way it was paid (a card now, partner staff
recording a bank transfer next week, or at once when the seller assigns unpaid
orders): a unique audit entry "provision:<invoice>" written in the same
transaction as the seats is the proof that it was done."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from piccolo.columns.combination import WhereRaw
from piccolo.query import OrderByRaw

from portal import db
from portal.domain import audit, orders, outbox
from portal.domain.access import Actor, get_company, may_act_on, require_partner_manager, under_wing
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import invoices, money, payments, profiles, provisioning, quotes
from portal.domain.billing.quotes import Purchase, format_day, load_subscription, refuse_read_only
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.filters import Filter, FilterSet, as_date, as_int, day_end, one_of
from portal.domain.pages import Page, paginate
from portal.tables import AuditEntry, Company, LicenceBatch, LicenceOrder
from portal.tables_billing import (
    METHODS,
    SUBSCRIPTION_STATUSES,
    BillingAccount,
    Charge,
    Invoice,
    InvoiceLine,
    Subscription,
)

LIVE = quotes.LIVE
NO_CARD = "Pay Online needs a card: add one with “Create an Online Billing Account” first."


# --- Reading ----------------------------------------------------------------------


async def _account(company_id: int) -> dict | None:
    return await BillingAccount.select().where(BillingAccount.company == company_id).first()


def _public_account(account: dict | None) -> dict | None:
    """What a page may show of an account: never the processor's token."""
    if account is None:
        return None
    return {key: value for key, value in account.items() if key != "card_token"} | {
        "has_card": bool(account["card_token"])
    }


async def _live(company_id: int) -> dict | None:
    return (
        await Subscription.select()
        .where((Subscription.company == company_id) & Subscription.status.is_in(list(LIVE)))
        .order_by(Subscription.id, ascending=False)
        .first()
    )


def seats_of(tier_item: dict | None, extra_users: int) -> int:
    return (tier_item["included_users"] if tier_item else 0) + extra_users


async def current_subscription(actor: Actor, company_id: int) -> dict | None:
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
        .where((Invoice.subscription == subscription["id"]) & (Invoice.status == "issued"))
        .order_by(Invoice.id)
    )
    for row in unpaid:
        row["label"] = invoices.format_invoice_number(row["number"])
    return {
        **subscription,
        "tier_item": tier,
        "seats": seats_of(tier, subscription["extra_users"]),
        "next_seats": None if next_extra is None else seats_of(tier, next_extra),
        "batch_row": batch,
        "account": _public_account(await _account(company["id"])),
        "unpaid_invoices": unpaid,
        "cancelled": not subscription["auto_renew"],
    }


async def read_only_allowance(company_id: int) -> int:
    """The read-only user credits of the company's active subscription (0 without):
    a pending one has paid for nothing yet."""
    row = (
        await Subscription.select(Subscription.read_only_users)
        .where((Subscription.company == company_id) & (Subscription.status == "active"))
        .first()
    )
    return int(row["read_only_users"]) if row else 0


def renewal_key(subscription: dict) -> str:
    """The one renewal invoice of a term: "renewal:<subscription>:<term end, ISO>"."""
    return f"renewal:{subscription['id']}:{subscription['term_end'].astimezone(UTC).isoformat()}"


# --- Locks ------------------------------------------------------------------------


async def _lock_company(company_id: int) -> None:
    await db.for_update(Company.select(Company.id).where(Company.id == company_id))


async def _lock_subscription(actor: Actor | None, subscription_id: int) -> dict:
    row = await db.for_update(Subscription.select().where(Subscription.id == subscription_id)).first()
    if row is None or (actor is not None and not may_act_on(actor, row["company_path"])):
        raise NotFound("No such subscription.")
    return row


async def _lock_invoice(actor: Actor | None, invoice_id: int) -> dict:
    row = await db.for_update(Invoice.select().where(Invoice.id == invoice_id)).first()
    if row is None or (actor is not None and not may_act_on(actor, row["company_path"])):
        raise NotFound("No such invoice.")
    return row


# --- Provisioning what an invoice pays for ------------------------------------------


async def _claim_provisioning(invoice: dict, actor: Actor | None, now: datetime) -> bool:
    """Whether this call is the one that provisions `invoice` (the audit entry's
    dedupe key is unique: a second call, in this transaction or a later one, finds it)."""
    written = (
        await AuditEntry.insert(
            AuditEntry(
                at=now,
                actor=actor.user_id if actor else None,
                acting_as=actor.managing_id if actor else None,
                company=invoice["company"],
                action="subscription.provision",
                detail={
                    "invoice": invoice["id"],
                    "kind": invoice["kind"],
                    "total_cents": invoice["total_cents"],
                    "currency": invoice["currency"],
                },
                dedupe_key=f"provision:{invoice['id']}",
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(AuditEntry.id)
    )
    return bool(written)


async def provision_invoice(
    invoice_id: int, now: datetime, *, actor: Actor | None = None, unpaid_ok: bool = False
) -> dict | None:
    """Provision what a paid invoice pays for, once; inside the caller's transaction.
    Returns the new batch, or None (nothing to provision, or done already).

    - purchase: the first term, from now (the payment date), assigning the
      invoice's requested order if it has one; the subscription turns active.
    - renewal: the next term, from where the current one ends, its seat holders
      carried over; fewer users asked for (next_*) take effect.
    - change: the tier and users added, with a batch of the added seats to the term's end.
    `unpaid_ok`: the seller assigns unpaid orders, so an issued invoice counts too."""
    invoice = await _lock_invoice(None, invoice_id)
    if invoice["status"] != "paid" and not (unpaid_ok and invoice["status"] == "issued"):
        return None
    if invoice["subscription"] is None or not await _claim_provisioning(invoice, actor, now):
        return None
    subscription = await _lock_subscription(None, invoice["subscription"])
    items = {row["code"]: row for row in await billing_catalogue.items(subscription["partner"])}
    actor_id = actor.user_id if actor else None
    batch: dict | None = None
    if invoice["kind"] == "purchase":
        if subscription["status"] != "pending":
            return None
        assigned = await _assigned_batch(invoice["order"])
        if assigned is not None:
            # Someone pressed "Assign" on the order in Requested Orders first: its
            # batch is this term's, and no second one is made.
            return await _adopt(subscription, assigned)
        order_id = invoice["order"]
        if order_id is not None and not await LicenceOrder.exists().where(
            (LicenceOrder.id == order_id) & (LicenceOrder.status == "requested")
        ):
            order_id = None  # declined or withdrawn meanwhile: the payment still buys the seats
        end = money.term_end(now)
        batch = await provisioning.provision_term(
            subscription,
            seats=seats_of(items.get(subscription["tier"]), subscription["extra_users"]),
            starts_at=now,
            ends_at=end,
            now=now,
            order_id=order_id,
            actor_id=actor_id,
            notify=True,
        )
        changes: dict[Any, Any] = {"status": "active", "term_start": now, "term_end": end, "batch": batch["id"]}
    elif invoice["kind"] == "renewal":
        start = invoice["term_start"] or subscription["term_end"]
        end = invoice["term_end"] or money.term_end(start)
        extra = subscription["next_extra_users"]
        extra = subscription["extra_users"] if extra is None else extra
        read_only = subscription["next_read_only_users"]
        read_only = subscription["read_only_users"] if read_only is None else read_only
        batch = await provisioning.provision_term(
            subscription,
            seats=seats_of(items.get(subscription["tier"]), extra),
            starts_at=start,
            ends_at=end,
            now=now,
            carry_holders=True,
            actor_id=actor_id,
            notify=True,
        )
        changes = {
            "status": "active",
            "term_start": start,
            "term_end": end,
            "batch": batch["id"],
            "extra_users": extra,
            "read_only_users": read_only,
            "next_extra_users": None,
            "next_read_only_users": None,
            "renewal_attempts": 0,
            "next_charge_at": None,
        }
    elif invoice["kind"] == "change":
        changes = await _apply_change(invoice, subscription, items)
        added = seats_of(items.get(changes.get("tier", subscription["tier"])), changes["extra_users"]) - seats_of(
            items.get(subscription["tier"]), subscription["extra_users"]
        )
        if added > 0 and subscription["term_end"] is not None and subscription["term_end"] > now:
            batch = await provisioning.provision_term(
                subscription,
                seats=added,
                starts_at=now,
                ends_at=subscription["term_end"],
                now=now,
                actor_id=actor_id,
                notify=True,
            )
    else:
        return None
    await Subscription.update(changes).where(Subscription.id == subscription["id"])
    if batch is not None and invoice["order"] is None:
        # The seats the invoice paid for, shown beside it.
        await Invoice.update({Invoice.order: batch["order"]}).where(Invoice.id == invoice["id"])
    return batch


async def _assigned_batch(order_id: int | None) -> dict | None:
    if order_id is None:
        return None
    return (
        await LicenceBatch.select()
        .where((LicenceBatch.order == order_id) & (LicenceBatch.order.status == "assigned"))
        .first()
    )


async def _adopt(subscription: dict, batch: dict) -> dict:
    await Subscription.update(
        {
            Subscription.status: "active",
            Subscription.term_start: batch["starts_at"],
            Subscription.term_end: batch["ends_at"],
            Subscription.batch: batch["id"],
        }
    ).where(Subscription.id == subscription["id"])
    return batch


async def _apply_change(invoice: dict, subscription: dict, items: dict[str, dict]) -> dict[Any, Any]:
    changes: dict[Any, Any] = {
        "extra_users": subscription["extra_users"],
        "read_only_users": subscription["read_only_users"],
    }
    for line in await InvoiceLine.select(InvoiceLine.code).where(InvoiceLine.invoice == invoice["id"]):
        what = quotes.parse_change_code(line["code"])
        if what is None:
            continue
        if what.code == billing_catalogue.STANDARD_USER:
            changes["extra_users"] += what.count
        elif what.code == billing_catalogue.READ_ONLY_USER:
            changes["read_only_users"] += what.count
        elif what.code in items:
            changes["tier"] = what.code
    return changes


async def _charge_and_provision(
    actor: Actor | None, invoice: dict, token: str, attempt: int, now: datetime
) -> tuple[payments.ChargeResult, dict | None, dict]:
    """Charge outside any transaction (the processor is slow and may be far), then
    provision in a short one. Returns the answer, the batch and the invoice as it is now."""
    charge = await payments.charge_invoice(invoice["id"], token, attempt=attempt, now=now)
    batch = None
    if charge.ok:
        async with db.write_transaction():
            batch = await provision_invoice(invoice["id"], now, actor=actor)
    current = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    return charge, batch, current or invoice


# --- Buy ----------------------------------------------------------------------------


async def buy(actor: Actor, company_id: int, purchase: Purchase, now: datetime) -> dict:
    """One live subscription per company (checked under the company's lock).

    online: needs a saved card; the invoice is issued and charged (attempt 1):
    paid → the seats are provisioned and the subscription is active; declined →
    it stays pending with the invoice issued, nothing provisioned, and the
    reason returned. invoice: the invoice is issued with a licence order
    `requested` (Requested Orders); provisioned when the payment is recorded, or
    at once if the seller's profile assigns unpaid orders.

    Returns {"subscription", "invoice", "charge": ChargeResult | None, "batch": … | None}."""
    refuse_read_only(actor)
    quote = await quotes.quote_purchase(actor, company_id, purchase, now)
    company = await get_company(actor, company_id)
    seller = await billing_catalogue.seller_of(company["id"])
    profile = await profiles.profile(seller["id"])
    tier = await billing_catalogue.item(seller["id"], purchase.tier)
    seats = seats_of(tier, purchase.extra_users)
    token = None
    if purchase.method == "online":
        account = await _account(company["id"])
        token = account["card_token"] if account else None
        if not token:
            raise ValidationFailed({"card": NO_CARD})
    batch = None
    async with db.write_transaction():
        await _lock_company(company["id"])
        if await _live(company["id"]) is not None:
            raise ValidationFailed(
                {
                    "subscription": f"{company['name']} already has a subscription: "
                    "change it under Billing → Subscriptions."
                }
            )
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
                    status="pending",
                    auto_renew=True,
                    created_at=now,
                    created_by=actor.user_id,
                )
            ).returning(*Subscription.all_columns())
        )[0]
        order = None
        if purchase.method == "invoice":
            order = await orders.request_order(actor, company["id"], seats, None, "", now)
        invoice = await invoices.create_invoice(
            partner_id=seller["id"],
            company_id=company["id"],
            kind="purchase",
            lines=quote.lines,
            now=now,
            subscription_id=subscription["id"],
            order_id=order["id"] if order else None,
            actor=actor,
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
        )
        if purchase.method == "invoice" and profile["assign_unpaid"]:
            batch = await provision_invoice(invoice["id"], now, actor=actor, unpaid_ok=True)
    charge = None
    if token is not None:
        charge, batch, invoice = await _charge_and_provision(actor, invoice, token, 1, now)
    current = await Subscription.select().where(Subscription.id == subscription["id"]).first()
    return {"subscription": current, "invoice": invoice, "charge": charge, "batch": batch}


async def pay_invoice(actor: Actor, invoice_id: int, now: datetime) -> dict:
    """Pay an issued invoice of the company with the card on its billing account
    (a purchase whose first charge was declined, a change, a renewal invoice
    asked for early); what it pays for is provisioned when the charge succeeds.
    Returns {"invoice", "charge", "batch"}."""
    refuse_read_only(actor)
    invoice = await Invoice.select().where(Invoice.id == invoice_id).first()
    if invoice is None or not may_act_on(actor, invoice["company_path"]):
        raise NotFound("No such invoice.")
    if invoice["status"] != "issued":
        raise invoices.InvoiceTransition(invoice["status"], "paid")
    account = await _account(invoice["company"])
    if account is None or not account["card_token"]:
        raise ValidationFailed({"card": NO_CARD})
    attempt = await Charge.count().where(Charge.invoice == invoice_id) + 1
    charge, batch, current = await _charge_and_provision(actor, invoice, account["card_token"], attempt, now)
    return {"invoice": current, "charge": charge, "batch": batch}


async def record_payment(actor: Actor, invoice_id: int, *, method: str, reference: str, now: datetime) -> dict:
    """Partner staff record a payment (card_by_phone, bank_transfer, money_order,
    check, card): the invoice is paid and what it pays for provisioned, in one
    transaction. Returns {"invoice", "batch", "subscription"}."""
    refuse_read_only(actor)
    async with db.write_transaction():
        invoice = await _lock_invoice(actor, invoice_id)
        require_partner_manager(actor)
        paid = await invoices.mark_paid(
            invoice["id"], method=method, reference=reference, now=now, recorded_by=actor.user_id, actor=actor
        )
        batch = await provision_invoice(invoice["id"], now, actor=actor)
    subscription = None
    if invoice["subscription"] is not None:
        subscription = await Subscription.select().where(Subscription.id == invoice["subscription"]).first()
    return {"invoice": paid, "batch": batch, "subscription": subscription}


# --- Change -----------------------------------------------------------------------


async def change(
    actor: Actor, subscription_id: int, *, tier: str, extra_users: int, read_only_users: int, now: datetime
) -> dict:
    """What quote_change showed: more is invoiced (and charged, online) pro rata
    and provisioned when paid; fewer is kept for the next term (next_*).
    Returns {"subscription", "invoice" | None, "charge" | None, "batch" | None, "notes"}."""
    refuse_read_only(actor)
    subscription = await load_subscription(actor, subscription_id)
    token = None
    if subscription["method"] == "online":
        account = await _account(subscription["company"])
        token = account["card_token"] if account else None
    batch = None
    invoice = None
    async with db.write_transaction():
        subscription = await _lock_subscription(actor, subscription_id)
        await quotes.check_changeable(subscription, now)
        plan, profile = await quotes.plan_change(
            subscription, tier=tier, extra_users=extra_users, read_only_users=read_only_users, now=now
        )
        if plan.lines and subscription["method"] == "online" and not token:
            raise ValidationFailed({"card": NO_CARD})
        await Subscription.update(
            {
                Subscription.next_extra_users: plan.next_extra_users,
                Subscription.next_read_only_users: plan.next_read_only_users,
            }
        ).where(Subscription.id == subscription["id"])
        if plan.lines:
            invoice = await invoices.create_invoice(
                partner_id=subscription["partner"],
                company_id=subscription["company"],
                kind="change",
                lines=plan.lines,
                now=now,
                subscription_id=subscription["id"],
                term_start=now,
                term_end=subscription["term_end"],
                actor=actor,
            )
        await audit.record(
            actor,
            "subscription.change",
            subscription["company"],
            now,
            {
                "subscription": subscription["id"],
                "invoice": invoice["id"] if invoice else None,
                "tier": tier,
                "extra_users": extra_users,
                "read_only_users": read_only_users,
                "next_extra_users": plan.next_extra_users,
                "next_read_only_users": plan.next_read_only_users,
                "total_cents": invoice["total_cents"] if invoice else 0,
                "currency": invoice["currency"] if invoice else profile["currency"],
            },
        )
        if invoice is not None and subscription["method"] == "invoice" and profile["assign_unpaid"]:
            batch = await provision_invoice(invoice["id"], now, actor=actor, unpaid_ok=True)
    charge = None
    if invoice is not None and token is not None:
        charge, batch, invoice = await _charge_and_provision(actor, invoice, token, 1, now)
    current = await Subscription.select().where(Subscription.id == subscription["id"]).first()
    return {"subscription": current, "invoice": invoice, "charge": charge, "batch": batch, "notes": plan.notes}


# --- Cancel -----------------------------------------------------------------------


async def _set_cancelled(actor: Actor, subscription: dict, action: str, now: datetime) -> dict:
    """Nothing renews any more; a running term runs to its end, a pending one ends now."""
    changes: dict[Any, Any] = {"auto_renew": False, "cancelled_at": now}
    if subscription["status"] == "pending":
        changes["status"] = "ended"
    await Subscription.update(changes).where(Subscription.id == subscription["id"])
    await audit.record(
        actor,
        action,
        subscription["company"],
        now,
        {"subscription": subscription["id"], "ends_at": (subscription["term_end"] or now).isoformat()},
    )
    return {**subscription, **changes, "ends_at": subscription["term_end"] or now}


def _check_live(subscription: dict, now: datetime) -> None:
    ended = subscription["status"] not in LIVE or (
        subscription["term_end"] is not None and subscription["term_end"] <= now
    )
    if ended:
        raise ValidationFailed({"subscription": "This subscription has ended."})


async def cancel(actor: Actor, subscription_id: int, now: datetime) -> dict:
    """Pay Online: auto-renewal stops; the licence runs to its end date ("ends_at").
    Undo with undo_cancel before then."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await _lock_subscription(actor, subscription_id)
        _check_live(subscription, now)
        if subscription["method"] != "online":
            raise ValidationFailed(
                {
                    "subscription": "A subscription paid by invoice is cancelled by partner staff: "
                    "use “Request cancellation”."
                }
            )
        if not subscription["auto_renew"]:
            raise ValidationFailed(
                {"subscription": f"Already cancelled: it runs until {format_day(subscription['term_end'] or now)}."}
            )
        return await _set_cancelled(actor, subscription, "subscription.cancel", now)


async def undo_cancel(actor: Actor, subscription_id: int, now: datetime) -> dict:
    """Before the end, a cancelled subscription renews again. One paid by invoice
    was cancelled by partner staff, so only they undo it."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await _lock_subscription(actor, subscription_id)
        _check_live(subscription, now)
        if subscription["method"] != "online":
            require_partner_manager(actor)
        if subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is not cancelled."})
        changes: dict[Any, Any] = {"auto_renew": True, "cancelled_at": None, "cancel_requested_at": None}
        await Subscription.update(changes).where(Subscription.id == subscription["id"])
        await audit.record(
            actor, "subscription.undo_cancel", subscription["company"], now, {"subscription": subscription["id"]}
        )
    return {**subscription, **changes}


async def request_cancellation(actor: Actor, subscription_id: int, now: datetime) -> dict:
    """Pay by Invoice: "Request cancellation" e-mails the seller's managers, who
    confirm it. Asked twice, it stays one request."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await _lock_subscription(actor, subscription_id)
        _check_live(subscription, now)
        if subscription["method"] != "invoice":
            raise ValidationFailed({"subscription": "A subscription paid online is cancelled with Cancel."})
        if not subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is already cancelled."})
        if subscription["cancel_requested_at"] is not None:
            return subscription
        await Subscription.update({Subscription.cancel_requested_at: now}).where(Subscription.id == subscription["id"])
        company = await Company.select(Company.name).where(Company.id == subscription["company"]).first()
        name = company["name"] if company else "A customer"
        await outbox.queue_email(
            "subscription_cancellation",
            subscription["company"],
            await outbox.managers_of(subscription["partner"]),
            f"{name} requests cancellation of its subscription",
            f"{actor.name} ({name}) asks to cancel the subscription paid by invoice, so that it does not renew"
            + (f" after {format_day(subscription['term_end'])}" if subscription["term_end"] else "")
            + ".\n\nConfirm it under Billing → Subscriptions:\n"
            + outbox.link(f"/billing/subscriptions?cancellation_requested=yes&customer={subscription['company']}"),
            now,
            dedupe=f"subscription_cancellation:{subscription['id']}:{now.isoformat()}",
        )
        await audit.record(
            actor,
            "subscription.request_cancellation",
            subscription["company"],
            now,
            {"subscription": subscription["id"]},
        )
    return {**subscription, "cancel_requested_at": now}


async def confirm_cancellation(actor: Actor, subscription_id: int, now: datetime) -> dict:
    """Partner staff cancel a subscription (asked for in the portal or by e-mail):
    nothing renews; the term runs to its end."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await _lock_subscription(actor, subscription_id)
        require_partner_manager(actor)
        _check_live(subscription, now)
        if not subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is already cancelled."})
        cancelled = await _set_cancelled(actor, subscription, "subscription.confirm_cancellation", now)
        await outbox.queue_email(
            "subscription_cancelled",
            subscription["company"],
            await outbox.managers_of(subscription["company"]),
            "Your subscription is cancelled",
            "Your subscription will not renew."
            + (f" Your licences run until {format_day(subscription['term_end'])}." if subscription["term_end"] else ""),
            now,
            dedupe=f"subscription_cancelled:{subscription['id']}:{now.isoformat()}",
        )
    return cancelled


# --- Renewal invoice on request ---------------------------------------------------


async def request_invoice(actor: Actor, subscription_id: int, now: datetime) -> dict:
    """ "Request an invoice": the next term's invoice, now; one per term (asked
    twice, or issued by the renewal job, it is the same invoice). Paid, the
    next term starts where this one ends."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await _lock_subscription(actor, subscription_id)
        if subscription["status"] != "active" or subscription["term_end"] is None:
            raise ValidationFailed({"subscription": "Only a running subscription renews."})
        if not subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is cancelled, so it does not renew."})
        lines, _ = await quotes.renewal_lines(subscription)
        start = subscription["term_end"]
        invoice = await invoices.create_invoice(
            partner_id=subscription["partner"],
            company_id=subscription["company"],
            kind="renewal",
            lines=lines,
            now=now,
            subscription_id=subscription["id"],
            term_start=start,
            term_end=money.term_end(start),
            idempotency_key=renewal_key(subscription),
            actor=actor,
        )
    return invoice


# --- The partner's list -----------------------------------------------------------

_FAILED_CHARGES = WhereRaw(
    "EXISTS (SELECT 1 FROM card_charge JOIN invoice ON invoice.id = card_charge.invoice "
    "WHERE invoice.subscription = subscription.id AND invoice.status = 'issued' AND card_charge.status = 'declined')"
)
_YES = one_of(("yes",))

SUBSCRIPTION_FILTERS = FilterSet(
    Filter("customer", "Customer", "select", as_int, lambda v: Subscription.company == v),
    Filter("status", "Status", "select", one_of(SUBSCRIPTION_STATUSES), lambda v: Subscription.status == v),
    Filter("method", "Billing method", "select", one_of(METHODS), lambda v: Subscription.method == v),
    Filter("renews_before", "Renews before", "date", as_date, lambda v: Subscription.term_end < day_end(v)),
    Filter("failed_charges", "Failed charges", "select", _YES, lambda v: _FAILED_CHARGES),
    Filter(
        "cancellation_requested",
        "Cancellation requested",
        "select",
        _YES,
        lambda v: Subscription.cancel_requested_at.is_not_null() & (Subscription.auto_renew == True),  # noqa: E712
    ),
)


_LIST_COLUMNS = (*Subscription.all_columns(), Subscription.company.name.as_alias("company_name"))


async def list_subscriptions(actor: Actor, filters: Mapping[str, Any], page: int) -> Page:
    """Every subscription under the partner's wing, next renewal first (pending
    ones, with no term yet, last), narrowed by SUBSCRIPTION_FILTERS values."""
    require_partner_manager(actor)
    where = SUBSCRIPTION_FILTERS.where(filters, under_wing(actor, Subscription.company_path))
    select = (
        Subscription.select(*_LIST_COLUMNS)
        .where(where)
        .order_by(OrderByRaw("subscription.term_end IS NULL"))
        .order_by(Subscription.term_end)
        .order_by(Subscription.id)
    )
    return await paginate(select, Subscription.count().where(where), page)
