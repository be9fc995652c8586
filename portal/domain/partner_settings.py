"""What a partner decides for the companies under its wing: the largest quantity
Request Licenses accepts, and the free-seat level at which the Admin Dashboard
warns. A company follows the nearest company above it (or itself) that saved
settings; with none, the defaults.

Two-factor sign-in is different: a requirement is never lifted below the
company that set it. Managers of a partner or sub-partner must use a second
factor when it, or any partner above it, requires it of its staff; managers of
a customer, when any partner above it requires it of its customers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal.domain import audit
from portal.domain.access import Actor, get_company, require_partner_manager
from portal.domain.errors import ValidationFailed
from portal.tables import PartnerSetting

DEFAULT_MAX_ORDER_QUANTITY = 10_000
DEFAULT_LOW_SEAT_THRESHOLD = 0
# A limit is a guard against slips, not a business cap: beyond this it guards nothing.
LIMIT_CEILING = 1_000_000


@dataclass(frozen=True)
class PartnerSettings:
    max_order_quantity: int = DEFAULT_MAX_ORDER_QUANTITY
    low_seat_threshold: int = DEFAULT_LOW_SEAT_THRESHOLD
    # The company whose row these are (None: the defaults).
    set_by_company: int | None = None


def _ancestors(path: str) -> list[int]:
    """ "/1/7/42/" → [42, 7, 1], nearest first."""
    return [int(part) for part in reversed(path.strip("/").split("/")) if part]


async def for_path(company_path: str) -> PartnerSettings:
    """The settings that apply to the company at `company_path`."""
    ids = _ancestors(company_path)
    rows = await PartnerSetting.select(
        PartnerSetting.company, PartnerSetting.max_order_quantity, PartnerSetting.low_seat_threshold
    ).where(PartnerSetting.company.is_in(ids))
    by_company = {row["company"]: row for row in rows}
    for company_id in ids:
        row = by_company.get(company_id)
        if row is not None:
            return PartnerSettings(row["max_order_quantity"], row["low_seat_threshold"], company_id)
    return PartnerSettings()


async def two_factor_required(company_path: str, company_kind: str) -> bool:
    """Whether managers of the company at `company_path` must sign in with a second factor."""
    ids = _ancestors(company_path)
    column = PartnerSetting.two_factor_customers if company_kind == "customer" else PartnerSetting.two_factor_staff
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


def _checked(field: str, label: str, value: int, low: int) -> int:
    if not low <= value <= LIMIT_CEILING:
        raise ValidationFailed({field: f"{label} must be a whole number from {low:,} to {LIMIT_CEILING:,}."})
    return value


async def save(
    actor: Actor, company_id: int, *, max_order_quantity: int, low_seat_threshold: int, now: datetime
) -> PartnerSettings:
    """A partner manager sets them for their own company or a sub-partner under it."""
    require_partner_manager(actor)
    company = await get_company(actor, company_id)
    if company["kind"] == "customer":
        raise ValidationFailed({"company": "Settings belong to a partner; customers follow their partner's."})
    row = PartnerSetting(
        company=company_id,
        max_order_quantity=_checked("max_order_quantity", "The largest order", max_order_quantity, 1),
        low_seat_threshold=_checked("low_seat_threshold", "The free-seat alert", low_seat_threshold, 0),
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
