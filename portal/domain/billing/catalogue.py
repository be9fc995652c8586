"""What each seller sells: its catalogue of tiers, user credits and add-ons.

The seller of a customer is its parent company (a partner or a sub-partner).
The guide gives the credits', course's and reports' prices but no tier prices;
every seller starts from DEFAULT_ITEMS, written the first time its catalogue is
read, and changes the prices from there. Not portal/domain/catalogue.py, which
holds the licence products of batches."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, get_company, require, require_partner_manager
from portal.domain.billing.profiles import profile
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import Company, CompanyKind
from portal.tables.billing import CatalogueItem

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
    # The guide's prepared reports ($4,000-$8,000), named for what a security-awareness
    # partner sells; each partner may rename its add-ons (save_items).
    DefaultItem("report_summary", "addon", "Phishing simulation report", 4_000_00, "once"),
    DefaultItem("report_ecosystem", "addon", "Security awareness benchmark report", 6_000_00, "once"),
    DefaultItem("report_full", "addon", "Human risk assessment report", 8_000_00, "once"),
)
_ORDER = {item.code: position for position, item in enumerate(DEFAULT_ITEMS)}


def yearly_cents(item: dict[str, Any]) -> int:
    """What one unit of `item` costs for a whole term: a monthly price is billed
    for the 12 months of a term; a yearly or one-off price as it is."""
    return cast("int", item["price_cents"] * 12 if item["period"] == "month" else item["price_cents"])


def seats_of(tier_item: dict[str, Any] | None, extra_users: int) -> int:
    """The standard seats of a term: the tier's included users and the extra ones."""
    return (tier_item["included_users"] if tier_item else 0) + extra_users


async def seller_of(company_id: int) -> dict[str, Any]:
    """The company row of the customer's seller (its parent). A partner or
    sub-partner buys from no one here: NotFound."""
    rows = await Company.raw(
        "SELECT seller.* FROM company JOIN company AS seller ON seller.id = company.parent "
        "WHERE company.id = {} AND company.kind = 'customer'",
        company_id,
    )
    if not rows:
        raise NotFound("This company has no seller.")
    return cast("dict[str, Any]", rows[0])


async def items(partner_id: int) -> list[dict[str, Any]]:
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


async def item(partner_id: int, code: str) -> dict[str, Any]:
    """One item the seller sells now; ValidationFailed if unknown or inactive."""
    found = next((row for row in await items(partner_id) if row["code"] == code), None)
    if found is None or not found["active"]:
        raise ValidationFailed({"item": "That item is not for sale."})
    return found


MAX_NAME = 100


@dataclass(frozen=True)
class ItemChange:
    """What the catalogue form says of one item. `name`: an add-on's new display
    name (a partner sells its own reports under its own names); None keeps it."""

    code: str
    price_cents: int
    included_users: int | None
    active: bool
    name: str | None = None


class CatalogueRefused(ValidationFailed):
    """Fields of some items refused (`by_item`: code → field → message); nothing was saved."""

    def __init__(self, by_item: dict[str, dict[str, str]]) -> None:
        super().__init__(
            {f"{code}.{field}": text for code, fields in by_item.items() for field, text in fields.items()}
        )
        self.by_item = by_item


async def save_item(
    actor: Actor,
    partner_id: int,
    code: str,
    *,
    price_cents: int,
    included_users: int | None,
    active: bool,
    now: datetime,
    name: str | None = None,
) -> dict[str, Any]:
    """One item of the catalogue, as save_items saves them; its errors by field."""
    try:
        (saved,) = await save_items(
            actor, partner_id, [ItemChange(code, price_cents, included_users, active, name)], now=now
        )
    except CatalogueRefused as refused:
        raise ValidationFailed(refused.by_item[code]) from None
    return saved


async def save_items(
    actor: Actor, partner_id: int, changes: list[ItemChange], *, now: datetime
) -> list[dict[str, Any]]:
    """A partner manager sets items' prices (and a tier's included users, an
    add-on's name), or takes them off sale: all of them or, if any field is
    refused, none. Only the items that change are written and audited. Prices
    and names already on issued invoices do not change."""
    require_partner_manager(actor)
    require(actor, Capability.BILLING_SETTINGS)
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change anything.")
    seller = await get_company(actor, partner_id)
    if seller["kind"] == CompanyKind.CUSTOMER:
        raise NotFound("No such seller.")
    rows = {row["code"]: row for row in await items(partner_id)}
    if any(change.code not in rows for change in changes):
        raise NotFound("No such item.")
    names = {code: row["name"] for code, row in rows.items()}
    names.update({c.code: " ".join(c.name.split()) for c in changes if c.name is not None})
    refused: dict[str, dict[str, str]] = {}
    saved: list[dict[str, Any]] = []
    for change in changes:
        current = rows[change.code]
        errors: dict[str, str] = {}
        if not 0 <= change.price_cents <= MAX_PRICE_CENTS:
            errors["price_cents"] = "Enter a price from 0 to 100,000,000.00."
        included_users = change.included_users
        if current["kind"] == "tier":
            if included_users is None or not 0 <= included_users <= MAX_INCLUDED_USERS:
                errors["included_users"] = f"Enter how many standard users it includes, 0 to {MAX_INCLUDED_USERS:,}."
        else:
            included_users = current["included_users"]
        name = names[change.code]
        if change.name is not None and name != current["name"]:
            if current["kind"] != "addon":
                errors["name"] = "Only an add-on's name can be changed."
            elif not name:
                errors["name"] = "Give the add-on a name."
            elif len(name) > MAX_NAME:
                errors["name"] = f"Use at most {MAX_NAME} characters."
            elif any(other.casefold() == name.casefold() for code, other in names.items() if code != change.code):
                errors["name"] = f"Another item is already called {name}."
        if errors:
            refused[change.code] = errors
        saved.append(
            {
                **current,
                "name": name,
                "price_cents": change.price_cents,
                "included_users": included_users,
                "active": change.active,
            }
        )
    if refused:
        raise CatalogueRefused(refused)
    currency = (await profile(partner_id))["currency"]
    fields = ("name", "price_cents", "included_users", "active")
    async with db.write_transaction():
        for item_now in saved:
            current = rows[item_now["code"]]
            if all(item_now[f] == current[f] for f in fields):
                continue
            await CatalogueItem.update(
                {
                    CatalogueItem.name: item_now["name"],
                    CatalogueItem.price_cents: item_now["price_cents"],
                    CatalogueItem.included_users: item_now["included_users"],
                    CatalogueItem.active: item_now["active"],
                }
            ).where(CatalogueItem.id == current["id"])
            await audit.record(
                actor,
                "billing.catalogue_item.save",
                partner_id,
                now,
                {
                    "code": item_now["code"],
                    "currency": currency,
                    "price_cents": item_now["price_cents"],
                    "old_price_cents": current["price_cents"],
                    "included_users": item_now["included_users"],
                    "active": item_now["active"],
                }
                | (
                    {"name": item_now["name"], "old_name": current["name"]}
                    if item_now["name"] != current["name"]
                    else {}
                ),
            )
    return saved
