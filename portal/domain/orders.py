"""Orders: "Request Licenses" → "Requested Orders" → "Assign" (or "Decline")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict, cast

from piccolo.custom_types import Combinable

from portal import db
from portal.domain import audit, catalogue, outbox, partner_settings
from portal.domain.access import Actor, get_company, may_act_on, require_partner_manager, under_wing
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.filters import Filter, FilterSet, as_date, as_int, day_end, day_start, one_of
from portal.domain.licences import tabs
from portal.domain.pages import PER_PAGE, Page, clamp_page
from portal.tables import Allocation, Company, LicenceBatch, LicenceOrder, User

STATUSES = ("requested", "assigned", "declined", "cancelled")
# Requested Orders opens on the orders waiting for "Assign"; `status=any` in the
# URL is the user's choice of every status, so a shared link keeps its meaning.
ANY_STATUS = "any"
DEFAULT_FILTERS = {"status": "requested"}


class InvalidTransition(ValidationFailed):
    def __init__(self, status: str, wanted: str) -> None:
        super().__init__({"status": f"This order is already {status}; it cannot be {wanted}."})
        self.status = status


async def _nearest_account_managers(company: dict) -> tuple[int, list[str]]:
    """The managers of the nearest partner or sub-partner above that has any."""
    ancestor_ids = [int(part) for part in company["path"].strip("/").split("/")[:-1]]
    for ancestor_id in reversed(ancestor_ids):
        recipients = await outbox.managers_of(ancestor_id)
        if recipients:
            return ancestor_id, recipients
    return company["id"], []


@dataclass(frozen=True)
class RequestAdvice:
    """What Request Licenses shows before a request: the seats the company holds,
    the users waiting for one, the requests not yet decided, and the partner's limit."""

    company_name: str
    free: int  # free seats of running batches: an ended batch's seats are no use
    expired: int
    unlicensed: int
    pending: list[dict]  # requested orders: quantity, requested_at; newest first
    limit: int

    @property
    def waiting(self) -> int:
        return self.expired + self.unlicensed

    @property
    def suggested(self) -> int:
        """Enough for everyone waiting, less the seats already free; at least one."""
        return min(max(self.waiting - self.free, 1), self.limit)

    @property
    def pending_quantity(self) -> int:
        return sum(o["quantity"] for o in self.pending)

    def warnings(self) -> list[str]:
        """Why a request may be a slip: one is already waiting, or the seats held cover everyone."""
        said = []
        if len(self.pending) == 1:
            (o,) = self.pending
            said.append(
                f"{self.company_name} already has a request waiting for its account managers: "
                f"{_licences(o['quantity'])}, requested {o['requested_at']:%d %b %Y}."
            )
        elif self.pending:
            said.append(
                f"{self.company_name} already has {len(self.pending)} requests waiting for its account managers, "
                f"{_licences(self.pending_quantity)} in all."
            )
        if self.free and self.free >= self.waiting:
            seats = f"{self.free:,} free seat{'' if self.free == 1 else 's'}"
            if self.waiting:
                users = f"{self.waiting:,} user{'' if self.waiting == 1 else 's'}"
                said.append(
                    f"{self.company_name} already holds {seats}, enough for the {users} waiting "
                    "(expired or unlicensed): allocate them under Expired Licenses."
                )
            else:
                said.append(f"{self.company_name} already holds {seats}, and no user is waiting for one.")
        return said


def _licences(n: int) -> str:
    return f"{n:,} licence{'' if n == 1 else 's'}"


class NeedsConfirmation(ValidationFailed):
    """The request is valid but may be a slip: nothing is written until the user
    asks again, confirmed."""

    def __init__(self, advice: RequestAdvice) -> None:
        super().__init__({"confirm": " ".join(advice.warnings())})
        self.advice = advice


async def request_advice(actor: Actor, company_id: int, now: datetime) -> RequestAdvice:
    company = await get_company(actor, company_id)
    return await _advice(company, now)


async def _advice(company: dict, now: datetime) -> RequestAdvice:
    seats = await tabs.seats_and_waiting(company["id"], now)
    pending = (
        await LicenceOrder.select(LicenceOrder.quantity, LicenceOrder.requested_at)
        .where((LicenceOrder.company == company["id"]) & (LicenceOrder.status == "requested"))
        .order_by(LicenceOrder.requested_at, ascending=False)
    )
    limit = (await partner_settings.for_path(company["path"])).max_order_quantity
    return RequestAdvice(company["name"], seats.free, seats.expired, seats.unlicensed, pending, limit)


async def request_order(
    actor: Actor,
    company_id: int,
    quantity: int | None,
    product_id: int | None,
    po_number: str,
    now: datetime,
    *,
    confirmed: bool = True,
) -> dict:
    """A customer manager (or a partner manager in manage mode, or creating the
    customer) asks for `quantity` licences; the account managers above are e-mailed.

    At most the partner's largest order (partner_settings). Unless `confirmed`,
    a request that may be a slip (another one waiting, or free seats enough for
    everyone waiting) raises NeedsConfirmation and writes nothing."""
    company = await get_company(actor, company_id)
    errors: dict[str, str] = {}
    if company["kind"] != "customer":
        raise PermissionDenied("Licences are ordered for customer companies.")
    limit = (await partner_settings.for_path(company["path"])).max_order_quantity
    if quantity is None or quantity < 1:
        errors["quantity"] = "Enter how many licences, 1 or more."
    elif quantity > limit:
        errors["quantity"] = (
            f"At most {_licences(limit)} in one order: the largest order your account managers accept. "
            "Ask them if you need more."
        )
    product = await catalogue.product(product_id) if product_id else await catalogue.product_by_code(catalogue.PREMIUM)
    if product is None:
        errors["product_id"] = "Choose a licence type."
    po_number = po_number.strip()
    if len(po_number) > 64:
        errors["po_number"] = "Use at most 64 characters."
    if errors or product is None:
        raise ValidationFailed(errors)
    if not confirmed:
        advice = await _advice(company, now)
        if advice.warnings():
            raise NeedsConfirmation(advice)

    async with db.write_transaction():
        order = (
            await LicenceOrder.insert(
                LicenceOrder(
                    company=company["id"],
                    # The database sets it too (a trigger); given here so the
                    # returned row has it on SQLite, whose RETURNING precedes AFTER triggers.
                    company_path=company["path"],
                    product=product["id"],
                    quantity=quantity,
                    status="requested",
                    po_number=po_number or None,
                    requested_by=actor.user_id,
                    requested_at=now,
                )
            ).returning(*LicenceOrder.all_columns())
        )[0]
        partner_id, recipients = await _nearest_account_managers(company)
        await outbox.queue_email(
            "order_requested",
            company["id"],
            recipients,
            f"{company['name']} requests {quantity} licences",
            f"{actor.name} ({company['name']}) requested {quantity} × {product['name']}"
            + (f", purchase order {po_number}" if po_number else "")
            + ".\n\nAssign it under Licenses → Orders → Requested Orders:\n"
            + outbox.link(f"/licences/orders?status=requested&customer={company['id']}"),
            now,
            dedupe=f"order_requested:{order['id']}",
        )
        await audit.record(
            actor,
            "order.request",
            company["id"],
            now,
            {"order": order["id"], "quantity": quantity, "product": product["code"]},
        )
    return order


async def _lock_order(actor: Actor, order_id: int, partners_only: bool = True) -> dict:
    row = await db.for_update(
        LicenceOrder.select(*LicenceOrder.all_columns()).where(LicenceOrder.id == order_id),
        of=LicenceOrder,
    ).first()
    if row is None or not may_act_on(actor, row["company_path"]):
        raise NotFound("No such order.")
    if partners_only:
        require_partner_manager(actor)
    return row


# An order bought "Pay by Invoice" waits for its payment, unless the seller assigns unpaid orders.
_UNPAID_PURCHASE_SQL = (
    "SELECT 1 FROM invoice LEFT JOIN billing_profile ON billing_profile.company = invoice.partner "
    "WHERE invoice.\"order\" = {} AND invoice.kind = 'purchase' AND invoice.status = 'issued' "
    "AND NOT COALESCE(billing_profile.assign_unpaid, false)"
)


async def _refuse_unpaid(order_id: int) -> None:
    if await LicenceOrder.raw(_UNPAID_PURCHASE_SQL, order_id):
        raise ValidationFailed(
            {"status": "Its invoice is not paid yet: record the payment under Billing → Invoices, which assigns it."}
        )


async def assign_order(actor: Actor, order_id: int, now: datetime) -> dict:
    """Assigning creates the batch: its 12-month clock starts now, for every seat.
    A second assign (double click, two managers) finds the order assigned and
    is refused, so there is one batch."""
    async with db.write_transaction():
        order = await _lock_order(actor, order_id)
        if order["status"] != "requested":
            raise InvalidTransition(order["status"], "assigned")
        await _refuse_unpaid(order["id"])
        product = await catalogue.product(order["product"])
        assert product is not None, "an order's product is a foreign key"
        ends_at = catalogue.term_end(product, now)
        batch = (
            await LicenceBatch.insert(
                LicenceBatch(
                    order=order["id"],
                    company=order["company"],
                    product=product["id"],
                    seats=order["quantity"],
                    allocated=0,
                    starts_at=now,
                    ends_at=ends_at,
                )
            ).returning(*LicenceBatch.all_columns())
        )[0]
        await LicenceOrder.update(
            {LicenceOrder.status: "assigned", LicenceOrder.decided_by: actor.user_id, LicenceOrder.decided_at: now}
        ).where(LicenceOrder.id == order["id"])
        if not product["is_trial"]:
            await end_running_trials(order["company"], now)
        company = await Company.select(Company.name).where(Company.id == order["company"]).first()
        assert company is not None, "an order's company is a foreign key"
        await outbox.queue_email(
            "order_assigned",
            order["company"],
            await outbox.managers_of(order["company"]),
            f"{order['quantity']} licences are ready to allocate",
            f"{order['quantity']} × {product['name']} for {company['name']} are assigned and ready to allocate.\n"
            f"They run until {ends_at:%d %B %Y}, whenever you allocate them.\n\n"
            "Allocate them under Licenses → Expired Licenses → Select users Manually:\n"
            + outbox.link(f"/companies/{order['company']}/licences?tab=expired"),
            now,
            dedupe=f"order_assigned:{order['id']}",
        )
        await audit.record(
            actor,
            "order.assign",
            order["company"],
            now,
            {"order": order["id"], "batch": batch["id"], "seats": order["quantity"]},
        )
    return batch


async def end_running_trials(company_id: int, now: datetime) -> None:
    """A paid batch upgrades a trial: running trial batches end now, so their
    holders show expired and can be given seats of the new batch."""
    trials = LicenceBatch.select(LicenceBatch.id).where(
        (LicenceBatch.company == company_id)
        & (LicenceBatch.product.is_trial == True)  # noqa: E712
        & (LicenceBatch.ends_at > now)
    )
    trial_ids = [row["id"] for row in await trials]
    if not trial_ids:
        return
    await LicenceBatch.update({LicenceBatch.ends_at: now}).where(LicenceBatch.id.is_in(trial_ids))
    await Allocation.update({Allocation.ends_at: now}).where(
        Allocation.batch.is_in(trial_ids) & (Allocation.ends_at > now)
    )
    await User.update({User.licence_ends_at: now}).where(
        (User.company == company_id)
        & (User.licence_ends_at > now)
        & User.id.is_in(Allocation.select(Allocation.user).where(Allocation.batch.is_in(trial_ids)))
        & User.id.not_in(
            Allocation.select(Allocation.user).where(
                Allocation.batch.not_in(trial_ids)
                & (Allocation.ends_at > now)
                & Allocation.released_at.is_null()
                & (Allocation.batch.company == company_id)
            )
        )
    )


async def decline_order(actor: Actor, order_id: int, reason: str, now: datetime) -> dict:
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed({"reason": "Say why, so the customer knows what to do next."})
    if len(reason) > 500:
        raise ValidationFailed({"reason": "Use at most 500 characters."})
    async with db.write_transaction():
        order = await _lock_order(actor, order_id)
        if order["status"] != "requested":
            raise InvalidTransition(order["status"], "declined")
        await LicenceOrder.update(
            {
                LicenceOrder.status: "declined",
                LicenceOrder.decided_by: actor.user_id,
                LicenceOrder.decided_at: now,
                LicenceOrder.decline_reason: reason,
            }
        ).where(LicenceOrder.id == order["id"])
        await outbox.queue_email(
            "order_declined",
            order["company"],
            await outbox.managers_of(order["company"]),
            f"Your order of {order['quantity']} licences was declined",
            f"{actor.name} declined the order of {order['quantity']} licences: {reason}",
            now,
            dedupe=f"order_declined:{order['id']}",
        )
        await audit.record(actor, "order.decline", order["company"], now, {"order": order["id"], "reason": reason})
    return {**order, "status": "declined", "decline_reason": reason}


async def cancel_order(actor: Actor, order_id: int, now: datetime) -> None:
    """Whoever may order for the company may withdraw a request not yet decided."""
    async with db.write_transaction():
        order = await _lock_order(actor, order_id, partners_only=False)
        if order["status"] != "requested":
            raise InvalidTransition(order["status"], "cancelled")
        await LicenceOrder.update(
            {LicenceOrder.status: "cancelled", LicenceOrder.decided_by: actor.user_id, LicenceOrder.decided_at: now}
        ).where(LicenceOrder.id == order["id"])
        await audit.record(actor, "order.cancel", order["company"], now, {"order": order["id"]})


async def start_trial(actor: Actor, company_id: int, seats: int, now: datetime) -> dict:
    """A new customer starts on the 30-day Free trial: an order of the trial
    product, assigned at once by the partner manager; it ends by itself."""
    require_partner_manager(actor)
    if await LicenceBatch.exists().where(LicenceBatch.company == company_id):
        raise ValidationFailed({"trial": "A Free trial is for customers that never held licences."})
    trial = await catalogue.product_by_code(catalogue.TRIAL)
    async with db.write_transaction():
        order = await request_order(actor, company_id, seats, trial["id"], "", now)
        return await assign_order(actor, order["id"], now)


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
    product_short: NotRequired[str]  # added to a page's rows, not to a download's


class _CountedOrderRow(OrderRow):
    total: int  # of all the orders that match, for the pager


# Written out rather than built by Piccolo: its join builder costs more than
# running the query, on the page partner managers open most.
_ORDER_COLUMNS = (
    "licence_order.id, licence_order.quantity, licence_order.status, licence_order.po_number, "
    "licence_order.requested_at, licence_order.decided_at, licence_order.decline_reason, "
    "licence_order.company_path, company.id AS company_id, company.name AS company_name, "
    "licence_order.product AS product_id, product.name AS product_name, requester.name AS requested_by_name"
)
_ORDERS_FROM = (
    "FROM licence_order "
    "JOIN company ON company.id = licence_order.company "
    "JOIN product ON product.id = licence_order.product "
    "LEFT JOIN portal_user AS requester ON requester.id = licence_order.requested_by "
    "WHERE {} ORDER BY licence_order.requested_at DESC, licence_order.id DESC"
)
# A page of orders, each row carrying the count of all that match, for the pager:
# one round trip instead of two (the count is an uncorrelated subquery, run once).
_ORDER_PAGE = f"SELECT {_ORDER_COLUMNS}, (SELECT COUNT(*) FROM licence_order WHERE {{}}) AS total {_ORDERS_FROM}"
_ORDER_ROWS = f"SELECT {_ORDER_COLUMNS} {_ORDERS_FROM}"


def _rows(sql: str, limit: int, offset: int = 0) -> str:
    """LIMIT and OFFSET written in, not bound: a cached generic plan for
    `LIMIT $5` cannot know a page is 25 rows, so it joins and sorts every match
    (25 ms) instead of walking the index to the 25th, and PostgreSQL, seeing
    that, re-plans the statement on every run (1–3 ms)."""
    return f"{sql} LIMIT {int(limit)} OFFSET {int(offset)}"


async def list_orders(actor: Actor, filters: Mapping[str, Any], page: int) -> Page[OrderRow]:
    """Every order under the wing, newest first, narrowed by the filters
    (values of ORDER_FILTERS, by name)."""
    require_partner_manager(actor)
    return await _newest_first(ORDER_FILTERS.where(filters, under_wing(actor, LicenceOrder.company_path)), page)


async def iter_orders(actor: Actor, filters: Mapping[str, Any], chunk: int = 2000) -> AsyncIterator[list[OrderRow]]:
    """Every order `list_orders` would show, newest first, `chunk` rows at a
    time: a download of the whole list never holds it all."""
    require_partner_manager(actor)
    sql = ORDER_FILTERS.where(filters, under_wing(actor, LicenceOrder.company_path)).querystring
    offset = 0
    while True:
        rows: list[OrderRow] = await LicenceOrder.raw(_rows(_ORDER_ROWS, chunk, offset), sql)
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        offset += chunk


async def _newest_first(where: Combinable, page: int) -> Page[OrderRow]:
    """Orders with their customer's, product's and requester's names; `where`
    may name columns of licence_order only."""
    sql, number = where.querystring, clamp_page(page)
    rows: list[_CountedOrderRow] = await LicenceOrder.raw(
        _rows(_ORDER_PAGE, PER_PAGE, (number - 1) * PER_PAGE), sql, sql
    )
    for row in rows:
        row["product_short"] = short_product_name(row["product_name"])
    if rows:
        return Page(items=cast(list[OrderRow], rows), total=rows[0]["total"], number=number)
    # No row to carry the count (none match, or a page past the end): ask it alone.
    count = await LicenceOrder.raw("SELECT COUNT(*) AS n FROM licence_order WHERE {}", sql)
    return Page(items=[], total=count[0]["n"], number=number)


async def company_orders(actor: Actor, company_id: int, page: int) -> Page[OrderRow]:
    company = await get_company(actor, company_id)
    where = LicenceOrder.company == company["id"]
    return await _newest_first(where, page)


async def filter_choices(actor: Actor, names: Iterable[str]) -> dict[str, list[dict]]:
    """The options of the "Add Filter" selects among `names`, by filter name,
    each an `id` and a `name`. Only the filters on screen are asked for: a
    wing can hold thousands of customers."""
    require_partner_manager(actor)
    names = set(names)
    choices: dict[str, list[dict]] = {}
    if "customer" in names:
        choices["customer"] = (
            await Company.select(Company.id, Company.name)
            .where(under_wing(actor) & (Company.kind == "customer"))
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
    row["product_short"] = short_product_name(row["product_name"])
    return row


@dataclass(frozen=True)
class AssignPreview:
    """What "Assign" will do, shown before it does it."""

    order: OrderRow
    ends_at: datetime  # the batch's end if assigned now: its term starts at assignment


async def assign_preview(actor: Actor, order_id: int, now: datetime) -> AssignPreview:
    order = await get_order(actor, order_id)
    if order["status"] != "requested":
        raise InvalidTransition(order["status"], "assigned")
    await _refuse_unpaid(order["id"])
    product = await catalogue.product(order["product_id"])
    assert product is not None, "an order's product is a foreign key"
    return AssignPreview(order, catalogue.term_end(product, now))
