"""Changing a running subscription (seed 000's Upgrade, "Add users", fewer users
from the next term): what quotes.plan_change works out, invoiced and (online)
charged; more is provisioned when paid (settlement.py), fewer waits for the next
term (next_*)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from portal import db
from portal.domain import audit
from portal.domain.access import Actor
from portal.domain.billing import accounts, confirmations, invoices, locks, payments, quotes, settlement
from portal.domain.billing.invoices import totals
from portal.domain.billing.quotes import load_subscription, refuse_read_only
from portal.domain.errors import ValidationFailed
from portal.tables.billing import Subscription


async def change(
    actor: Actor,
    subscription_id: int,
    *,
    tier: str,
    extra_users: int,
    read_only_users: int,
    now: datetime,
    quoted: quotes.Quoted | None = None,
    processor: payments.CardProcessor,
) -> dict[str, Any]:
    """What quote_change showed: more is invoiced (and charged, online) pro rata
    and provisioned when paid; fewer is kept for the next term (next_*). A renewal
    invoice already issued for the next term is voided and reissued for the next
    term as changed, in the same transaction (its payment provisions what it bills).
    `quoted`: the price the customer saw; another price now changes nothing
    (ValidationFailed "price"; the day counts: the pro rata moves at midnight UTC).
    Returns {"subscription", "invoice" | None, "charge" | None, "batch" | None,
    "renewal_invoice" | None (the reissued one), "notes", "repeat"}; "repeat": this
    confirmation was applied before (confirmations.py), and nothing is done again."""
    return await _apply(
        actor,
        subscription_id,
        lambda held: quotes.Wanted(tier, extra_users, read_only_users),
        now=now,
        quoted=quoted,
        processor=processor,
    )


async def add_users(
    actor: Actor,
    subscription_id: int,
    *,
    standard_users: int,
    read_only_users: int,
    now: datetime,
    quoted: quotes.Quoted | None = None,
    processor: payments.CardProcessor,
) -> dict[str, Any]:
    """ "Add users": this many more standard and read-only user credits on the plan
    held, pro rata to the term's end, as quote_add_users showed; counted from the
    credits held when it is applied, under the subscription's lock. Returns what
    change() returns, with "added": (standard, read-only)."""
    added = quotes.check_added(standard_users, read_only_users)
    result = await _apply(
        actor,
        subscription_id,
        lambda held: quotes.added_to(held, *added),
        now=now,
        quoted=quoted,
        processor=processor,
        field_of=quotes.ADDED_FIELDS,
    )
    return {**result, "added": added}


async def _apply(
    actor: Actor,
    subscription_id: int,
    wanted_of: Callable[[dict[str, Any]], quotes.Wanted],
    *,
    now: datetime,
    quoted: quotes.Quoted | None,
    processor: payments.CardProcessor,
    field_of: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A change to what `wanted_of(the subscription, locked)` asks for; `field_of`
    renames the plan's error fields to the asking form's."""
    refuse_read_only(actor)
    subscription = await load_subscription(actor, subscription_id)
    token = None
    if subscription["method"] == "online":
        account = await accounts.account_of(subscription["company"])
        token = account["card_token"] if account else None
    batch = None
    invoice = None
    renewal_invoice = None
    async with db.write_transaction():
        subscription = await locks.lock_subscription(actor, subscription_id)
        done = await confirmations.earlier(subscription["company"], quoted)
        if done is not None:
            return _repeated(subscription, done["invoice"])
        await quotes.check_changeable(subscription, now)
        wanted = wanted_of(subscription)
        tier, extra_users, read_only_users = wanted.tier, wanted.extra_users, wanted.read_only_users
        plan, profile = await quotes.plan_change(
            subscription,
            tier=tier,
            extra_users=extra_users,
            read_only_users=read_only_users,
            now=now,
            field_of=field_of,
            next_term={"extra_users": wanted.next_extra_users, "read_only_users": wanted.next_read_only_users},
        )
        quotes.check_price(quoted, totals(plan.lines, profile["tax_rate_bp"], profile["currency"]))
        if plan.lines and subscription["method"] == "online" and not token:
            raise ValidationFailed({"card": accounts.NO_CARD})
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
                quoted=quoted,
            )
        if plan.reissue is not None:
            renewal_invoice = await invoices.replace_lines(actor, plan.reissue.invoice["id"], plan.reissue.lines, now)
        await audit.record(
            actor,
            "subscription.change",
            subscription["company"],
            now,
            {
                "subscription": subscription["id"],
                "invoice": invoice["id"] if invoice else None,
                "renewal_invoice": renewal_invoice["id"] if renewal_invoice else None,
                "tier": tier,
                "extra_users": extra_users,
                "read_only_users": read_only_users,
                "next_extra_users": plan.next_extra_users,
                "next_read_only_users": plan.next_read_only_users,
                "total_cents": invoice["total_cents"] if invoice else 0,
                "currency": invoice["currency"] if invoice else profile["currency"],
            },
            dedupe_key=confirmations.dedupe_key(subscription["company"], quoted),
        )
        if invoice is not None and subscription["method"] == "invoice" and profile["assign_unpaid"]:
            batch = await settlement.provision_invoice(invoice["id"], now, actor=actor, unpaid_ok=True)
    charge = None
    if invoice is not None and token is not None:
        charge, batch, invoice = await settlement.charge_and_provision(actor, invoice, token, now, processor=processor)
    current = await Subscription.select().where(Subscription.id == subscription["id"]).first()
    return {
        "subscription": current,
        "invoice": invoice,
        "charge": charge,
        "batch": batch,
        "renewal_invoice": renewal_invoice,
        "notes": plan.notes,
        "repeat": False,
    }


def _repeated(subscription: dict[str, Any], invoice: dict[str, Any] | None) -> dict[str, Any]:
    """The answer to a confirmation applied before: what it issued, nothing done now."""
    return {
        "subscription": subscription,
        "invoice": invoice,
        "charge": None,
        "batch": None,
        "renewal_invoice": None,
        "notes": (),
        "repeat": True,
    }
