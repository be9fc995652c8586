"""What a partner decides for the companies under its wing: the largest quantity
Request Licenses accepts, and the free-seat level at which the Admin Dashboard
warns. A company follows the nearest company above it (or itself) that saved
settings; with none, the defaults."""

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
