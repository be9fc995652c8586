"""What each seller sells: its catalogue of tiers, user credits and add-ons.

The seller of a customer is its parent company (a partner or a sub-partner).
The guide gives the credits', course's and reports' prices but no tier prices;
every seller starts from DEFAULT_ITEMS, written the first time its catalogue is
read, and changes the prices from there. Not portal/domain/catalogue.py, which
holds the licence products of batches."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, get_company, require_partner_manager
from portal.domain.billing.profiles import profile
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import Company
from portal.tables_billing import CatalogueItem

KINDS = ("tier", "user_credit", "addon")
PERIODS = ("year", "month", "once")
# A price beyond this is a typing slip, not a licence (and stays far inside BIGINT).
MAX_PRICE_CENTS = 100_000_000_00
MAX_INCLUDED_USERS = 100_000

TIERS = ("lite", "pro")
STANDARD_USER = "standard_user"
READ_ONLY_USER = "read_only_user"


@dataclass(frozen=True)
class DefaultItem:
    code: str
    kind: str
    name: str
    price_cents: int
    period: str
    included_users: int = 0


DEFAULT_ITEMS: tuple[DefaultItem, ...] = (
    DefaultItem("lite", "tier", "Lite", 3_000_00, "year", 5),
    DefaultItem("pro", "tier", "Pro", 6_000_00, "year", 10),
    DefaultItem(STANDARD_USER, "user_credit", "Additional standard user", 30_00, "month"),
    DefaultItem(READ_ONLY_USER, "user_credit", "Read-only user", 5_00, "month"),
    DefaultItem("onboarding", "addon", "Onboarding online course", 2_000_00, "once"),
    DefaultItem("report_summary", "addon", "Network summary report", 4_000_00, "once"),
    DefaultItem("report_ecosystem", "addon", "Ecosystem report", 6_000_00, "once"),
    DefaultItem("report_full", "addon", "Full data science report", 8_000_00, "once"),
)
_ORDER = {item.code: position for position, item in enumerate(DEFAULT_ITEMS)}


def yearly_cents(item: dict) -> int:
    """What one unit of `item` costs for a whole term: a monthly price is billed
    for the 12 months of a term; a yearly or one-off price as it is."""
    return item["price_cents"] * 12 if item["period"] == "month" else item["price_cents"]


def seats_of(tier_item: dict | None, extra_users: int) -> int:
    """The standard seats of a term: the tier's included users and the extra ones."""
    return (tier_item["included_users"] if tier_item else 0) + extra_users


async def seller_of(company_id: int) -> dict:
    """The company row of the customer's seller (its parent). A partner or
    sub-partner buys from no one here: NotFound."""
    rows = await Company.raw(
        "SELECT seller.* FROM company JOIN company AS seller ON seller.id = company.parent "
        "WHERE company.id = {} AND company.kind = 'customer'",
        company_id,
    )
    if not rows:
        raise NotFound("This company has no seller.")
    return rows[0]


async def items(partner_id: int) -> list[dict]:
    """The seller's whole catalogue (inactive items too), in the guide's order.
    The first read writes the defaults; two first reads at once write them once
    (the unique index on partner and code)."""
    rows = await CatalogueItem.select().where(CatalogueItem.partner == partner_id)
    if len(rows) < len(DEFAULT_ITEMS):
        have = {row["code"] for row in rows}
        missing = [CatalogueItem(partner=partner_id, **asdict(d)) for d in DEFAULT_ITEMS if d.code not in have]
        await CatalogueItem.insert(*missing).on_conflict(action="DO NOTHING")
        rows = await CatalogueItem.select().where(CatalogueItem.partner == partner_id)
    return sorted(rows, key=lambda row: (_ORDER.get(row["code"], len(_ORDER)), row["id"]))


async def item(partner_id: int, code: str) -> dict:
    """One item the seller sells now; ValidationFailed if unknown or inactive."""
    found = next((row for row in await items(partner_id) if row["code"] == code), None)
    if found is None or not found["active"]:
        raise ValidationFailed({"item": "That item is not for sale."})
    return found


async def save_item(
    actor: Actor,
    partner_id: int,
    code: str,
    *,
    price_cents: int,
    included_users: int | None,
    active: bool,
    now: datetime,
) -> dict:
    """A partner manager sets an item's price (and a tier's included users),
    or takes it off sale. Prices already on issued invoices do not change."""
    require_partner_manager(actor)
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change anything.")
    seller = await get_company(actor, partner_id)
    if seller["kind"] == "customer":
        raise NotFound("No such seller.")
    current = next((row for row in await items(partner_id) if row["code"] == code), None)
    if current is None:
        raise NotFound("No such item.")
    errors: dict[str, str] = {}
    if not 0 <= price_cents <= MAX_PRICE_CENTS:
        errors["price_cents"] = "Enter a price from 0 to 100,000,000.00."
    if current["kind"] == "tier":
        if included_users is None or not 0 <= included_users <= MAX_INCLUDED_USERS:
            errors["included_users"] = f"Enter how many standard users it includes, 0 to {MAX_INCLUDED_USERS:,}."
    else:
        included_users = current["included_users"]
    if errors:
        raise ValidationFailed(errors)
    currency = (await profile(partner_id))["currency"]
    async with db.write_transaction():
        await CatalogueItem.update(
            {
                CatalogueItem.price_cents: price_cents,
                CatalogueItem.included_users: included_users,
                CatalogueItem.active: active,
            }
        ).where(CatalogueItem.id == current["id"])
        await audit.record(
            actor,
            "billing.catalogue_item.save",
            partner_id,
            now,
            {
                "code": code,
                "currency": currency,
                "price_cents": price_cents,
                "old_price_cents": current["price_cents"],
                "included_users": included_users,
                "active": active,
            },
        )
    return {**current, "price_cents": price_cents, "included_users": included_users, "active": active}
