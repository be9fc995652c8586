"""Subscriptions (seed 000): buy, change, cancel, record payments; one live
subscription per company, its seats provisioned as licence batches.

Skeleton with the contract's signatures (docs/billing_api: B2); bodies follow."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from portal.domain.access import Actor
from portal.domain.pages import Page
from portal.tables_billing import Subscription

if TYPE_CHECKING:
    from portal.domain.billing.quotes import Purchase

LIVE = ("pending", "active")


async def current_subscription(actor: Actor, company_id: int) -> dict | None:
    """The live one (pending/active), with its tier item, seats, batch, account."""
    raise NotImplementedError


async def buy(actor: Actor, company_id: int, purchase: Purchase, now: datetime) -> dict:
    """Returns {"subscription": …, "invoice": …, "charge": ChargeResult | None, "batch": … | None}."""
    raise NotImplementedError


async def record_payment(actor: Actor, invoice_id: int, *, method: str, reference: str, now: datetime) -> dict:
    """Partner staff record an offline payment; what the invoice pays for is provisioned."""
    raise NotImplementedError


async def change(
    actor: Actor, subscription_id: int, *, tier: str, extra_users: int, read_only_users: int, now: datetime
) -> dict:
    raise NotImplementedError


async def cancel(actor: Actor, subscription_id: int, now: datetime) -> dict:
    raise NotImplementedError


async def undo_cancel(actor: Actor, subscription_id: int, now: datetime) -> dict:
    raise NotImplementedError


async def request_cancellation(actor: Actor, subscription_id: int, now: datetime) -> dict:
    raise NotImplementedError


async def confirm_cancellation(actor: Actor, subscription_id: int, now: datetime) -> dict:
    raise NotImplementedError


async def request_invoice(actor: Actor, subscription_id: int, now: datetime) -> dict:
    raise NotImplementedError


async def list_subscriptions(actor: Actor, filters: Mapping[str, Any], page: int) -> Page:
    raise NotImplementedError


async def read_only_allowance(company_id: int) -> int:
    """The read-only user credits of the company's active subscription (0 without):
    a pending one has paid for nothing yet."""
    row = (
        await Subscription.select(Subscription.read_only_users)
        .where((Subscription.company == company_id) & (Subscription.status == "active"))
        .first()
    )
    return int(row["read_only_users"]) if row else 0
