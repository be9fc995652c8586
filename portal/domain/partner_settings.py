"""What a partner decides for the companies under its wing: the largest quantity
Request Licenses accepts, the free-seat level at which the Admin Dashboard
warns, and its e-mails (portal/domain/reminder_settings.py saves those): the
days before a batch ends at which customer managers are reminded, whether its
account managers get a copy, the Reply-To address and the sender's name. A
company follows the nearest company above it (or itself) that saved settings;
with none, the defaults.

Two-factor sign-in is different: a requirement is never lifted below the
company that set it. Managers of a partner or sub-partner must use a second
factor when it, or any partner above it, requires it of its staff; managers of
a customer, when any partner above it requires it of its customers."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from portal.domain import audit
from portal.domain.access import Actor, Capability, get_company, require, require_partner_manager
from portal.domain.errors import ValidationFailed
from portal.domain.numbers import whole_number
from portal.tables import Company, CompanyKind, PartnerSetting

DEFAULT_MAX_ORDER_QUANTITY = 10_000
DEFAULT_LOW_SEAT_THRESHOLD = 0
# The guides' reminder, 72 hours before the end; the notice on the day always goes.
DEFAULT_REMINDER_DAYS: tuple[int, ...] = (3,)
# A limit is a guard against slips, not a business cap: beyond this it guards nothing.
LIMIT_CEILING = 1_000_000


@dataclass(frozen=True)
class PartnerSettings:
    max_order_quantity: int = DEFAULT_MAX_ORDER_QUANTITY
    low_seat_threshold: int = DEFAULT_LOW_SEAT_THRESHOLD
    # The company whose row these are (None: the defaults).
    set_by_company: int | None = None
    reminder_days: tuple[int, ...] = DEFAULT_REMINDER_DAYS  # largest first
    copy_account_managers: bool = False
    reply_to: str | None = None
    sender_name: str | None = None


def parse_days(text: str | None) -> tuple[int, ...]:
    """ "7, 3" → (7, 3): the stored list, largest first; anything unreadable is skipped."""
    days = {int(part) for part in (text or "").replace(" ", "").split(",") if part.isdigit()}
    return tuple(sorted((d for d in days if d > 0), reverse=True))


_COLUMNS = (
    PartnerSetting.company,
    PartnerSetting.max_order_quantity,
    PartnerSetting.low_seat_threshold,
    PartnerSetting.reminder_days,
    PartnerSetting.copy_account_managers,
    PartnerSetting.reply_to,
    PartnerSetting.sender_name,
)


def _from_row(row: dict[str, Any]) -> PartnerSettings:
    return PartnerSettings(
        row["max_order_quantity"],
        row["low_seat_threshold"],
        row["company"],
        parse_days(row["reminder_days"]),
        bool(row["copy_account_managers"]),
        row["reply_to"],
        row["sender_name"],
    )


def _ancestors(path: str) -> list[int]:
    """ "/1/7/42/" → [42, 7, 1], nearest first."""
    return [int(part) for part in reversed(path.strip("/").split("/")) if part]


async def for_path(company_path: str) -> PartnerSettings:
    """The settings that apply to the company at `company_path`."""
    ids = _ancestors(company_path)
    rows = await PartnerSetting.select(*_COLUMNS).where(PartnerSetting.company.is_in(ids))
    by_company = {row["company"]: row for row in rows}
    for company_id in ids:
        row = by_company.get(company_id)
        if row is not None:
            return _from_row(row)
    return PartnerSettings()


async def every_row() -> list[tuple[str, PartnerSettings]]:
    """Every saved row with its company's path, for work over many companies
    at once (the expiry sweep): a handful of rows, one per partner that saved."""
    rows = await PartnerSetting.select(*_COLUMNS, PartnerSetting.company.path.as_alias("path"))
    return [(row["path"], _from_row(row)) for row in rows]


def nearest(path: str, saved: dict[int, PartnerSettings]) -> PartnerSettings:
    """The settings of the company at `path` among `saved` (company → its row)."""
    for company_id in _ancestors(path):
        if company_id in saved:
            return saved[company_id]
    return PartnerSettings()


async def for_companies(company_ids: list[int]) -> dict[int, PartnerSettings]:
    """for_path for many companies: two queries."""
    if not company_ids:
        return {}
    companies = await Company.select(Company.id, Company.path).where(Company.id.is_in(sorted(set(company_ids))))
    wanted = {a for c in companies for a in _ancestors(c["path"])}
    rows = await PartnerSetting.select(*_COLUMNS).where(PartnerSetting.company.is_in(sorted(wanted)))
    saved = {row["company"]: _from_row(row) for row in rows}
    return {c["id"]: nearest(c["path"], saved) for c in companies}


async def two_factor_required(company_path: str, company_kind: str) -> bool:
    """Whether managers of the company at `company_path` must sign in with a second factor."""
    ids = _ancestors(company_path)
    column = (
        PartnerSetting.two_factor_customers if company_kind == CompanyKind.CUSTOMER else PartnerSetting.two_factor_staff
    )
    return await PartnerSetting.exists().where(PartnerSetting.company.is_in(ids) & (column == True))  # noqa: E712


@dataclass(frozen=True)
class TwoFactorRule:
    staff: bool  # this company's own choice for its staff and its sub-partners'
    customers: bool  # for the managers of the customers under its wing
    staff_from_above: bool  # a partner above requires it of this company's staff already
    customers_from_above: bool


async def two_factor_rule(actor: Actor) -> TwoFactorRule:
    """The partner manager's own company's choice, and what partners above it require."""
    require_partner_manager(actor)
    ids = _ancestors(actor.company_path)
    rows = {
        row["company"]: row
        for row in await PartnerSetting.select(
            PartnerSetting.company, PartnerSetting.two_factor_staff, PartnerSetting.two_factor_customers
        ).where(PartnerSetting.company.is_in(ids))
    }
    own = rows.pop(actor.company_id, None) or {}
    return TwoFactorRule(
        staff=bool(own.get("two_factor_staff")),
        customers=bool(own.get("two_factor_customers")),
        staff_from_above=any(row["two_factor_staff"] for row in rows.values()),
        customers_from_above=any(row["two_factor_customers"] for row in rows.values()),
    )


async def save_two_factor(actor: Actor, *, staff: bool, customers: bool, now: datetime) -> TwoFactorRule:
    """A partner manager requires (or stops requiring) a second factor of their own
    company's staff and sub-partners' staff, and of the customers' managers under it.
    A company that had no settings row gets one holding the limits it followed,
    so that saving this changes nothing else."""
    require_partner_manager(actor)
    require(actor, Capability.SSO)
    following = await for_path(actor.company_path)
    row = PartnerSetting(
        company=actor.company_id,
        max_order_quantity=following.max_order_quantity,
        low_seat_threshold=following.low_seat_threshold,
        two_factor_staff=staff,
        two_factor_customers=customers,
        updated_at=now,
        updated_by=actor.user_id,
    )
    await PartnerSetting.insert(row).on_conflict(
        target=PartnerSetting.company,
        action="DO UPDATE",
        values=[
            PartnerSetting.two_factor_staff,
            PartnerSetting.two_factor_customers,
            PartnerSetting.updated_at,
            PartnerSetting.updated_by,
        ],
    )
    await audit.record(
        actor, "partner_settings.two_factor", actor.company_id, now, {"staff": staff, "customers": customers}
    )
    return await two_factor_rule(actor)


def _checked_limits(max_order_quantity: int | str, low_seat_threshold: int | str) -> tuple[int, int]:
    """Both limits as typed (a form's text or a number), or every field's problem at once."""
    errors, values = {}, []
    for field, label, given, low, example in (
        ("max_order_quantity", "the largest order", max_order_quantity, 1, "10000"),
        ("low_seat_threshold", "the free-seat alert", low_seat_threshold, 0, "0 or 5"),
    ):
        value = given if isinstance(given, int) else whole_number(given, signed=True)
        if value is None:
            errors[field] = f"Enter {label} as a whole number, such as {example}."
        elif not low <= value <= LIMIT_CEILING:
            errors[field] = f"{label.capitalize()} must be a whole number from {low:,} to {LIMIT_CEILING:,}."
        values.append(value or 0)
    if errors:
        raise ValidationFailed(errors)
    return values[0], values[1]


async def save(
    actor: Actor,
    company_id: int,
    *,
    max_order_quantity: int | str,
    low_seat_threshold: int | str,
    now: datetime,
) -> PartnerSettings:
    """A partner manager sets them for their own company or a sub-partner under it."""
    require_partner_manager(actor)
    require(actor, Capability.SETTINGS)
    company = await get_company(actor, company_id)
    if company["kind"] == CompanyKind.CUSTOMER:
        raise ValidationFailed({"company": "Settings belong to a partner; customers follow their partner's."})
    max_order_quantity, low_seat_threshold = _checked_limits(max_order_quantity, low_seat_threshold)
    # A first row starts from what the company followed until now, so the
    # settings this form does not show stay as they were.
    inherited = await for_path(company["path"])
    row = PartnerSetting(
        company=company_id,
        max_order_quantity=max_order_quantity,
        low_seat_threshold=low_seat_threshold,
        reminder_days=",".join(map(str, inherited.reminder_days)),
        copy_account_managers=inherited.copy_account_managers,
        reply_to=inherited.reply_to,
        sender_name=inherited.sender_name,
        updated_at=now,
        updated_by=actor.user_id,
    )
    await PartnerSetting.insert(row).on_conflict(
        target=PartnerSetting.company,
        action="DO UPDATE",
        values=[
            PartnerSetting.max_order_quantity,
            PartnerSetting.low_seat_threshold,
            PartnerSetting.updated_at,
            PartnerSetting.updated_by,
        ],
    )
    await audit.record(
        actor,
        "partner_settings.save",
        company_id,
        now,
        {"max_order_quantity": max_order_quantity, "low_seat_threshold": low_seat_threshold},
    )
    return PartnerSettings(max_order_quantity, low_seat_threshold, company_id)


MAX_REMINDER_DAYS = 6
LONGEST_REMINDER = 365


def _checked_days(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if not parts:
        raise ValidationFailed({"reminder_days": "Give at least one day, such as 3."})
    if any(not part.isascii() or not part.isdigit() or len(part) > 3 for part in parts):
        raise ValidationFailed({"reminder_days": "Give whole numbers of days separated by commas, such as 7, 3."})
    days = {int(part) for part in parts}
    if not all(1 <= d <= LONGEST_REMINDER for d in days):
        raise ValidationFailed({"reminder_days": f"Each day must be from 1 to {LONGEST_REMINDER}."})
    if len(days) > MAX_REMINDER_DAYS:
        raise ValidationFailed({"reminder_days": f"Choose at most {MAX_REMINDER_DAYS} days."})
    return tuple(sorted(days, reverse=True))


def _checked_reply_to(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise ValidationFailed(
            {"reply_to": "Give an e-mail address, such as renewals@example.com, or leave it empty."}
        ) from None


def _checked_sender(text: str) -> str | None:
    text = " ".join(text.split())
    if len(text) > 100:
        raise ValidationFailed({"sender_name": "Use at most 100 characters."})
    return text or None


async def save_emails(
    actor: Actor,
    company_id: int,
    *,
    reminder_days: str,
    copy_account_managers: bool,
    reply_to: str,
    sender_name: str,
    now: datetime,
) -> PartnerSettings:
    """A partner manager sets, for their own company or a sub-partner under it,
    when customer managers are reminded, whether its account managers get a
    copy, and who the e-mails come from and go back to."""
    require_partner_manager(actor)
    require(actor, Capability.SETTINGS)
    company = await get_company(actor, company_id)
    if company["kind"] == CompanyKind.CUSTOMER:
        raise ValidationFailed({"company": "Settings belong to a partner; customers follow their partner's."})
    days = _checked_days(reminder_days)
    checked_reply_to = _checked_reply_to(reply_to)
    checked_sender = _checked_sender(sender_name)
    inherited = await for_path(company["path"])
    row = PartnerSetting(
        company=company_id,
        max_order_quantity=inherited.max_order_quantity,
        low_seat_threshold=inherited.low_seat_threshold,
        reminder_days=",".join(map(str, days)),
        copy_account_managers=copy_account_managers,
        reply_to=checked_reply_to,
        sender_name=checked_sender,
        updated_at=now,
        updated_by=actor.user_id,
    )
    await PartnerSetting.insert(row).on_conflict(
        target=PartnerSetting.company,
        action="DO UPDATE",
        values=[
            PartnerSetting.reminder_days,
            PartnerSetting.copy_account_managers,
            PartnerSetting.reply_to,
            PartnerSetting.sender_name,
            PartnerSetting.updated_at,
            PartnerSetting.updated_by,
        ],
    )
    saved = replace(
        inherited,
        set_by_company=company_id,
        reminder_days=days,
        copy_account_managers=copy_account_managers,
        reply_to=checked_reply_to,
        sender_name=checked_sender,
    )
    await audit.record(
        actor,
        "partner_settings.save_emails",
        company_id,
        now,
        {
            "reminder_days": list(days),
            "copy_account_managers": copy_account_managers,
            "reply_to": checked_reply_to,
            "sender_name": checked_sender,
        },
    )
    return saved
