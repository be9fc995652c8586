"""A buying company's billing account: the billing address invoices carry and the
card kept for "Pay Online" (the processor's token, brand, last 4 and expiry;
never the number)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, get_company
from portal.domain.billing import countries, payments
from portal.domain.billing.payments import CardProcessor, SavedCard
from portal.domain.billing.quotes import refuse_read_only
from portal.domain.errors import NotFound, ValidationFailed
from portal.tables import CompanyKind
from portal.tables.billing import BillingAccount, Subscription, SubscriptionStatus

_ADDRESS_COLUMNS = ("billing_name", "billing_email", "address", "country")
NO_CARD = "Pay Online needs a card: add one with “Create an Online Billing Account” first."


async def account_of(company_id: int) -> dict[str, Any] | None:
    """The company's account with the processor's token, for charging; never for a page."""
    return await BillingAccount.select().where(BillingAccount.company == company_id).first()


def without_token(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The account as pages show it: the token stays in the database."""
    if row is None:
        return None
    return {key: value for key, value in row.items() if key != "card_token"} | {"has_card": bool(row["card_token"])}


async def _customer(actor: Actor, company_id: int) -> dict[str, Any]:
    company = await get_company(actor, company_id)
    if company["kind"] != CompanyKind.CUSTOMER:
        raise NotFound("No such company.")
    return company


async def billing_account(actor: Actor, company_id: int) -> dict[str, Any] | None:
    """The company's account ("has_card" says whether a card is kept), or None."""
    company = await _customer(actor, company_id)
    return without_token(await BillingAccount.select().where(BillingAccount.company == company["id"]).first())


def check_address(billing_name: str, billing_email: str, address: str, country: str) -> dict[str, str]:
    """The address tidied, or ValidationFailed naming every bad field."""
    errors: dict[str, str] = {}
    billing_name = " ".join(billing_name.split())
    if not billing_name:
        errors["billing_name"] = "Enter the name invoices are made out to."
    elif len(billing_name) > 200:
        errors["billing_name"] = "Use at most 200 characters."
    try:
        billing_email = validate_email(billing_email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        errors["billing_email"] = str(exc) if billing_email.strip() else "Enter the e-mail address invoices go to."
    # Lines kept as typed, without blank ones or trailing spaces.
    address = "\n".join(line.strip() for line in address.strip().splitlines() if line.strip())
    if not address:
        errors["address"] = "Enter the billing address."
    elif len(address) > 500:
        errors["address"] = "Use at most 500 characters."
    try:
        country = countries.check_country(country)
    except ValidationFailed as refused:
        errors.update(refused.errors)
    if errors:
        raise ValidationFailed(errors)
    return {"billing_name": billing_name, "billing_email": billing_email, "address": address, "country": country}


async def _upsert(company_id: int, values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Insert the account or update what `values` names; the unique company index
    makes two first saves at once one row."""
    await BillingAccount.insert(BillingAccount(company=company_id, updated_at=now, **values)).on_conflict(
        target=BillingAccount.company,
        action="DO UPDATE",
        values=[getattr(BillingAccount, name) for name in (*values, "updated_at")],
    )
    row = await BillingAccount.select().where(BillingAccount.company == company_id).first()
    assert row is not None, "just written"
    return row


def _card_values(card: SavedCard) -> dict[str, Any]:
    return {"card_token": card.token, "card_brand": card.brand, "card_last4": card.last4, "card_expires": card.expires}


async def save_billing_address(
    actor: Actor, company_id: int, *, billing_name: str, billing_email: str, address: str, country: str, now: datetime
) -> dict[str, Any]:
    refuse_read_only(actor)
    company = await _customer(actor, company_id)
    values = check_address(billing_name, billing_email, address, country)
    async with db.write_transaction():
        row = await _upsert(company["id"], values, now)
        await audit.record(actor, "billing.address.save", company["id"], now, dict(values))
    result = without_token(row)
    assert result is not None
    return result


async def _keep(
    processor: CardProcessor, company_id: int, payment_method: str, email: str, name: str, now: datetime
) -> SavedCard:
    """The card the browser handed to the processor, kept there for charges without the
    cardholder (outside any transaction: the processor may be far)."""
    if not payment_method:
        raise ValidationFailed({"card": payments.NO_PAYMENT_METHOD})
    previous = await account_of(company_id)
    return await processor.keep_card(
        payment_method,
        previous_token=previous["card_token"] if previous else None,
        email=email or (previous["billing_email"] if previous else ""),
        name=name or (previous["billing_name"] if previous else ""),
        now=now,
    )


async def save_card(
    actor: Actor, company_id: int, payment_method: str, now: datetime, *, processor: CardProcessor
) -> dict[str, Any]:
    """The card the browser handed to the processor (`payment_method`, its id) is kept
    there (outside any transaction); its token is kept here."""
    refuse_read_only(actor)
    company = await _customer(actor, company_id)
    saved = await _keep(processor, company["id"], payment_method, "", "", now)
    async with db.write_transaction():
        row = await _upsert(company["id"], _card_values(saved), now)
        await audit.record(actor, "billing.card.save", company["id"], now, {"brand": saved.brand, "last4": saved.last4})
    result = without_token(row)
    assert result is not None
    return result


@dataclass(frozen=True)
class OnlineAccount:
    """ "Create an Online Billing Account" as sent: the card (the payment-method id the
    processor handed the browser) and the billing address."""

    payment_method: str
    billing_name: str
    billing_email: str
    address: str
    country: str


async def prepare_online_account(
    actor: Actor, company_id: int, account: OnlineAccount, now: datetime, *, processor: CardProcessor
) -> dict[str, Any]:
    """The account's values, checked, with the card saved at the processor (its token),
    outside any transaction; nothing is written here (store_online_account does).
    Every bad field is named at once."""
    refuse_read_only(actor)
    await _customer(actor, company_id)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    try:
        values = check_address(account.billing_name, account.billing_email, account.address, account.country)
    except ValidationFailed as failed:
        errors |= failed.errors
    if not errors:
        # The processor is asked only once the rest is right, so a typing slip
        # in the address leaves no card token behind.
        try:
            saved = await _keep(
                processor, company_id, account.payment_method, values["billing_email"], values["billing_name"], now
            )
            values |= _card_values(saved)
        except ValidationFailed as failed:
            errors |= failed.errors
    if errors:
        raise ValidationFailed(errors)
    return values


async def store_online_account(
    actor: Actor, company_id: int, values: dict[str, Any], now: datetime, *, switch: bool
) -> tuple[dict[str, Any], list[int]]:
    """Write what prepare_online_account checked, inside the caller's transaction.
    `switch`: a live subscription paid by invoice switches to Pay Online (the account
    page); buying does not (what it buys is paid online; any other stays as it is).
    Returns the row and the ids of the subscriptions switched."""
    row = await _upsert(company_id, values, now)
    switched: list[dict[str, Any]] = []
    if switch:
        switched = (
            await Subscription.update(
                {Subscription.method: "online", Subscription.auto_renew: True, Subscription.cancel_requested_at: None}
            )
            .where(
                (Subscription.company == company_id)
                & Subscription.status.is_in([SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE])
                & (Subscription.method == "invoice")
                # One that partner staff cancelled stays cancelled.
                & Subscription.cancelled_at.is_null()
            )
            .returning(Subscription.id)
        )
    await audit.record(
        actor,
        "billing.online_account.create",
        company_id,
        now,
        {
            **{name: values[name] for name in _ADDRESS_COLUMNS},
            "brand": values["card_brand"],
            "last4": values["card_last4"],
            "switched_subscriptions": [s["id"] for s in switched],
        },
    )
    return row, [s["id"] for s in switched]


async def create_online_billing_account(
    actor: Actor,
    company_id: int,
    *,
    payment_method: str,
    billing_name: str,
    billing_email: str,
    address: str,
    country: str,
    now: datetime,
    processor: CardProcessor,
) -> dict[str, Any]:
    """ "Create an Online Billing Account": the address and the card, both or
    neither (every bad field is named at once); a live subscription paid by
    invoice switches to Pay Online and renews by itself."""
    account = OnlineAccount(payment_method, billing_name, billing_email, address, country)
    values = await prepare_online_account(actor, company_id, account, now, processor=processor)
    async with db.write_transaction():
        row, switched = await store_online_account(actor, company_id, values, now, switch=True)
    result = without_token(row)
    assert result is not None
    return {**result, "switched_subscriptions": switched}
