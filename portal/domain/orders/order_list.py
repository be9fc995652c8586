"""Requested Orders: the list under the wing with its "Add Filter" spec and
choices, a customer's Orders tab, one order, and the rows of a CSV download."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NotRequired, TypedDict, cast

from piccolo.custom_types import Combinable

from portal.domain import catalogue
from portal.domain.access import Actor, get_company, may_act_on, require_partner_manager, under_wing
from portal.domain.errors import NotFound
from portal.domain.filters import Filter, FilterSet, as_date, as_int, day_end, day_start, one_of
from portal.domain.keyset import PER_PAGE, Fetch, Keyset, KeysetPage
from portal.domain.licences.plans import plan_label, plan_names
from portal.tables import Company, CompanyKind, LicenceOrder, OrderStatus, User

STATUSES = tuple(OrderStatus)
# Requested Orders opens on the orders waiting for "Assign"; `status=any` in the
# URL is the user's choice of every status, so a shared link keeps its meaning.
ANY_STATUS = "any"
DEFAULT_FILTERS = {"status": OrderStatus.REQUESTED}


def _status_clause(status: str) -> Combinable:
    # `any` still narrows by a clause (always true: the column is NOT NULL), so every value has one.
    return LicenceOrder.status.is_not_null() if status == ANY_STATUS else LicenceOrder.status == status


ORDER_FILTERS = FilterSet(
    Filter("customer", "Customer", "select", as_int, lambda v: LicenceOrder.company == v),
    Filter("status", "Status", "select", one_of((*STATUSES, ANY_STATUS)), _status_clause),
    Filter("product", "Product", "select", as_int, lambda v: LicenceOrder.product == v),
    Filter("requested_from", "Requested from", "date", as_date, lambda v: LicenceOrder.requested_at >= day_start(v)),
    Filter("requested_to", "Requested until", "date", as_date, lambda v: LicenceOrder.requested_at < day_end(v)),
    Filter("requested_by", "Requested by", "select", as_int, lambda v: LicenceOrder.requested_by == v, "Anyone"),
    Filter("min_quantity", "Quantity at least", "number", as_int, lambda v: LicenceOrder.quantity >= v),
    Filter("max_quantity", "Quantity at most", "number", as_int, lambda v: LicenceOrder.quantity <= v),
)


def parse_filters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The filters of a Requested Orders URL: what it says, and Requested where it
    names no status. `status=any` is kept, so the URL rebuilt from these says it."""
    return {**DEFAULT_FILTERS, **ORDER_FILTERS.parse(params)}


def short_product_name(name: str) -> str:
    """ "Security Awareness Training — Premium" → "Premium": the list's column is narrow,
    and every product of the catalogue is the same training."""
    return name.rsplit(" — ", 1)[-1]


class OrderRow(TypedDict):
    """A row of Requested Orders (and of a customer's Orders tab): _ORDER_COLUMNS."""

    id: int
    quantity: int
    status: str
    po_number: str | None
    requested_at: datetime
    decided_at: datetime | None
    decline_reason: str | None
    company_path: str
    company_id: int
    company_name: str
    product_id: int
    product_name: str
    requested_by_name: str | None
    # A renewal: the batch it renews (None for any other order), with its seats and term.
    renews_batch: int | None
    renews_seats: int | None
    renews_starts_at: datetime | None
    renews_ends_at: datetime | None
    # "End with the current term": the end the batch will have (None: 12 months from Assign).
    coterm_ends_at: datetime | None
    product_short: NotRequired[str]  # added to a page's rows, not to a download's


# Written out rather than built by Piccolo: its join builder costs more than
# running the query, on the page partner managers open most.
_ORDER_COLUMNS = (
    "licence_order.id, licence_order.quantity, licence_order.status, licence_order.po_number, "
    "licence_order.requested_at, licence_order.decided_at, licence_order.decline_reason, "
    "licence_order.company_path, company.id AS company_id, company.name AS company_name, "
    "licence_order.product AS product_id, product.name AS product_name, requester.name AS requested_by_name, "
    "licence_order.renews_batch, renewed.seats AS renews_seats, renewed.starts_at AS renews_starts_at, "
    "renewed.ends_at AS renews_ends_at, licence_order.coterm_ends_at"
)
_ORDERS_WHERE = (
    "FROM licence_order "
    "JOIN company ON company.id = licence_order.company "
    "JOIN product ON product.id = licence_order.product "
    "LEFT JOIN portal_user AS requester ON requester.id = licence_order.requested_by "
    "LEFT JOIN licence_batch AS renewed ON renewed.id = licence_order.renews_batch "
    "WHERE {}"
)
_NEWEST_FIRST = " ORDER BY licence_order.requested_at DESC, licence_order.id DESC"
_OLDEST_FIRST = " ORDER BY licence_order.requested_at, licence_order.id"
_ORDER_ROWS = f"SELECT {_ORDER_COLUMNS} {_ORDERS_WHERE}{_NEWEST_FIRST}"


def _rows(sql: str, limit: int) -> str:
    """LIMIT written in, not bound: a cached generic plan for `LIMIT $5` cannot
    know a page is 25 rows, so it joins and sorts every match (25 ms) instead of
    walking the index to the 25th, and PostgreSQL, seeing that, re-plans the
    statement on every run (1–3 ms)."""
    return f"{sql} LIMIT {int(limit)}"


def orders_keyset(scope: str, secret: bytes) -> Keyset:
    """The order of both order lists: newest request first, then the newest id."""
    return Keyset(LicenceOrder.requested_at, LicenceOrder.id, secret, scope=scope)


async def list_orders(
    actor: Actor, filters: Mapping[str, Any], cursor: str | None, secret: bytes
) -> KeysetPage[OrderRow]:
    """Every order under the wing, newest first, narrowed by the filters
    (values of ORDER_FILTERS, by name), a page from `cursor` (signed with `secret`;
    one of another list, or edited: the first page)."""
    require_partner_manager(actor)
    where = ORDER_FILTERS.where(filters, under_wing(actor, LicenceOrder.company_path))
    return await _newest_first(where, orders_keyset(f"requested-orders:{actor.company_path}", secret), cursor)


async def iter_orders(actor: Actor, filters: Mapping[str, Any], chunk: int = 2000) -> AsyncIterator[list[OrderRow]]:
    """Every order `list_orders` would show, newest first, `chunk` rows at a
    time: a download of the whole list never holds it all."""
    require_partner_manager(actor)
    where = ORDER_FILTERS.where(filters, under_wing(actor, LicenceOrder.company_path))
    async for rows in orders_keyset("", b"").walk_from(_fetch(where), chunk):
        yield rows


def _fetch(where: Combinable) -> Fetch[OrderRow]:
    """The orders matching `where` (columns of licence_order only) with their
    customer's, product's and requester's names, read as a Keyset pages them."""

    async def fetch(clause: Combinable | None, ascending: bool, limit: int) -> list[OrderRow]:
        narrowed = where if clause is None else where & clause
        order = _OLDEST_FIRST if ascending else _NEWEST_FIRST
        sql = _rows(f"SELECT {_ORDER_COLUMNS} {_ORDERS_WHERE}{order}", limit)
        return cast("list[OrderRow]", await LicenceOrder.raw(sql, narrowed.querystring))

    return fetch


async def _newest_first(where: Combinable, walk: Keyset, cursor: str | None) -> KeysetPage[OrderRow]:
    """Orders with their customer's, product's and requester's names; `where`
    may name columns of licence_order only."""
    counted = await LicenceOrder.raw("SELECT COUNT(*) AS n FROM licence_order WHERE {}", where.querystring)
    page = await walk.page_from(_fetch(where), int(counted[0]["n"]), walk.decode(cursor), PER_PAGE)
    await _name_plans(page.items)
    return page


async def _name_plans(rows: Sequence[OrderRow]) -> None:
    """A subscription's order is named by its plan, the others by their product's short name."""
    plans = await plan_names((row["id"], row["company_id"]) for row in rows)
    for row in rows:
        if row["id"] in plans:
            row["product_name"] = row["product_short"] = plan_label(plans[row["id"]])
        else:
            row["product_short"] = short_product_name(row["product_name"])


async def company_orders(actor: Actor, company_id: int, cursor: str | None, secret: bytes) -> KeysetPage[OrderRow]:
    company = await get_company(actor, company_id)
    where = LicenceOrder.company == company["id"]
    return await _newest_first(where, orders_keyset(f"orders:{company['id']}", secret), cursor)


async def filter_choices(actor: Actor, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The options of the "Add Filter" selects among `names`, by filter name,
    each an `id` and a `name`. Only the filters on screen are asked for: a
    wing can hold thousands of customers."""
    require_partner_manager(actor)
    names = set(names)
    choices: dict[str, list[dict[str, Any]]] = {}
    if "customer" in names:
        choices["customer"] = (
            await Company.select(Company.id, Company.name)
            .where(under_wing(actor) & (Company.kind == CompanyKind.CUSTOMER))
            .order_by(Company.name)
        )
    if "status" in names:
        choices["status"] = [{"id": status, "name": status.capitalize()} for status in STATUSES]
    if "product" in names:
        choices["product"] = await catalogue.products()
    if "requested_by" in names:
        choices["requested_by"] = (
            await User.select(User.id, User.name)
            .where(
                User.id.is_in(
                    LicenceOrder.select(LicenceOrder.requested_by).where(under_wing(actor, LicenceOrder.company_path))
                )
            )
            .order_by(User.name)
        )
    return choices


async def get_order(actor: Actor, order_id: int) -> OrderRow:
    require_partner_manager(actor)
    rows: list[OrderRow] = await LicenceOrder.raw(_rows(_ORDER_ROWS, 1), (LicenceOrder.id == order_id).querystring)
    row = rows[0] if rows else None
    if row is None or not may_act_on(actor, row["company_path"]):
        raise NotFound("No such order.")
    await _name_plans([row])
    return row
