"""A buying company's billing account: billing address and the card kept for "Pay Online"."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from portal.domain.access import Actor

if TYPE_CHECKING:
    from portal.domain.billing.payments import CardDetails


async def billing_account(actor: Actor, company_id: int) -> dict | None:
    raise NotImplementedError


async def save_billing_address(
    actor: Actor, company_id: int, *, billing_name: str, billing_email: str, address: str, country: str, now: datetime
) -> dict:
    raise NotImplementedError


async def save_card(actor: Actor, company_id: int, card: CardDetails, now: datetime) -> dict:
    raise NotImplementedError


async def create_online_billing_account(
    actor: Actor,
    company_id: int,
    *,
    card: CardDetails,
    billing_name: str,
    billing_email: str,
    address: str,
    country: str,
    now: datetime,
) -> dict:
    """Saves both; an invoice subscription switches to online + auto_renew."""
    raise NotImplementedError
