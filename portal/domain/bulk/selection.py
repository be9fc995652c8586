"""What a bulk action covers, resolved on the server: ticked customers, batches
or orders, or every customer (or order) matching the list's filter, across its
pages; and what it will change, said before it does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.dashboard import figures
from portal.domain.errors import ValidationFailed
from portal.domain.orders import order_list
from portal.tables import Company, LicenceOrder, OrderStatus

ACTIONS = {
    "assign": "Assign selected",
    "renew": "Renew selected",
    "allocate": "Allocate free seats",
    "auto_renew": "Turn on automatic renewal",
}
# A confirmation page lists this many items; the rest are counted.
SHOWN = 200


@dataclass(frozen=True)
class Selection:
    """Ticked ids, or `every_match` of the customer table's search (q,
    alerts_only) or of Requested Orders' filters (`order_filters`)."""

    action: str
    companies: tuple[int, ...] = ()
    batches: tuple[int, ...] = ()
    orders: tuple[int, ...] = ()
    every_match: bool = False
    query: figures.CustomerQuery = field(default_factory=figures.CustomerQuery)
    order_filters: Mapping[str, Any] | None = None  # every match of Requested Orders' filters

    def check(self) -> None:
        if self.action not in ACTIONS:
            raise ValidationFailed({"action": "Choose what to do: " + ", ".join(ACTIONS.values()) + "."})
        if not (self.companies or self.batches or self.orders or self.every_match):
            raise ValidationFailed({"selection": "Select at least one customer, or every match of the search."})


@dataclass(frozen=True)
class Item:
    company: int
    company_name: str
    target: int | None  # the batch (renew) or order (assign); None: the customer
    label: str
    seats: int = 0
    # Known before: why not (e.g. nothing ends within 30 days); the item is recorded as skipped.
    skip: str = ""


@dataclass(frozen=True)
class Plan:
    action: str
    items: list[Item]

    @property
    def customers(self) -> int:
        return len({i.company for i in self.items})

    @property
    def to_do(self) -> list[Item]:
        return [i for i in self.items if not i.skip]

    @property
    def skipped(self) -> list[Item]:
        return [i for i in self.items if i.skip]

    @property
    def said(self) -> str:
        """What confirming will change, in one sentence."""
        todo = self.to_do
        customers = len({i.company for i in todo})
        of = f"{customers:,} customer{'' if customers == 1 else 's'}"
        seats = sum(i.seats for i in todo)
        seats_said = f"{seats:,} seat{'' if seats == 1 else 's'}"
        if self.action == "renew":
            n = len(todo)
            return f"Renew {n:,} batch{'' if n == 1 else 'es'} for {of}: {seats_said}"
        if self.action == "assign":
            n = len(todo)
            return f"Assign {n:,} order{'' if n == 1 else 's'} for {of}: {seats_said}"
        if self.action == "allocate":
            return f"Allocate free seats at {of}: up to {seats_said} to users waiting"
        return f"Turn on automatic renewal for {of} (Renew automatically, the same quantity)"

    @property
    def nothing_to_do(self) -> bool:
        return not self.to_do


def _ids(values: Sequence[int]) -> str:
    return ", ".join(str(int(v)) for v in values) or "NULL"


async def _customers(actor: Actor, selection: Selection, now: datetime) -> list[dict[str, Any]]:
    """The selected customers under the wing (id, name), by name: ticked ones and
    every match of the table's search; ids outside the wing are left out."""
    ids = set(selection.companies)
    if selection.every_match and selection.order_filters is None:
        ids |= set(await figures.customer_ids(actor, selection.query, now))
    if not ids:
        return []
    return cast(
        "list[dict[str, Any]]",
        await Company.raw(
            f"SELECT id, name FROM company WHERE id IN ({_ids(sorted(ids))}) AND kind = 'customer' AND {{}} "
            "ORDER BY name, id",
            under_wing(actor).querystring,
        ),
    )


# Batches a "Renew selected" takes: ending within the next 30 days, not a trial,
# not already renewed (or waiting for it), not a running subscription's term.
_RENEWABLE = (
    "SELECT b.id, b.seats, b.ends_at, b.company, company.name AS company_name, p.name AS product_name "
    "FROM licence_batch AS b JOIN company ON company.id = b.company JOIN product AS p ON p.id = b.product "
    "WHERE {} AND b.ends_at > {} AND b.ends_at <= {} AND NOT p.is_trial "
    "AND NOT EXISTS (SELECT 1 FROM licence_order AS o WHERE o.renews_batch = b.id "
    "AND o.status IN ('requested', 'assigned')) "
    "AND NOT EXISTS (SELECT 1 FROM subscription AS s WHERE s.company = b.company "
    "AND s.term_end = b.ends_at AND s.status = 'active' AND s.auto_renew) "
)


def _batch_label(row: dict[str, Any]) -> str:
    return (
        f"{row['seats']:,} × {order_list.short_product_name(row['product_name'])} "
        f"ending {figures.db_datetime(row['ends_at']):%d %b %Y}"
    )


async def _renew(actor: Actor, selection: Selection, now: datetime) -> list[Item]:
    items: list[Item] = []
    wing = under_wing(actor).querystring
    customers = await _customers(actor, selection, now)
    if customers:
        rows = await Company.raw(
            _RENEWABLE
            + f"AND b.company IN ({_ids([c['id'] for c in customers])}) ORDER BY company.name, b.ends_at, b.id",
            wing,
            now,
            now + figures.SOON,
        )
        found = {r["company"] for r in rows}
        items += [Item(r["company"], r["company_name"], r["id"], _batch_label(r), r["seats"]) for r in rows]
        nothing = "Nothing to renew: no batch ends in the next 30 days that is not renewed already."
        items += [
            Item(c["id"], c["name"], None, "Batches ending in the next 30 days", skip=nothing)
            for c in customers
            if c["id"] not in found
        ]
    if selection.batches:
        ticked = await Company.raw(
            "SELECT b.id, b.seats, b.ends_at, b.company, company.name AS company_name, p.name AS product_name "
            "FROM licence_batch AS b JOIN company ON company.id = b.company JOIN product AS p ON p.id = b.product "
            f"WHERE {{}} AND b.id IN ({_ids(selection.batches)}) ORDER BY company.name, b.ends_at, b.id",
            wing,
        )
        already = {i.target for i in items}
        items += [
            Item(r["company"], r["company_name"], r["id"], _batch_label(r), r["seats"])
            for r in ticked
            if r["id"] not in already
        ]
    return items


async def _assign(actor: Actor, selection: Selection, now: datetime) -> list[Item]:
    wing = under_wing(actor, Company.path).querystring
    clauses = []
    customers = await _customers(actor, selection, now)
    if customers:
        clauses.append(f"o.company IN ({_ids([c['id'] for c in customers])})")
    if selection.orders:
        clauses.append(f"o.id IN ({_ids(selection.orders)})")
    args: list[Any] = [wing]
    if selection.every_match and selection.order_filters is not None:
        filters = {**selection.order_filters, "status": OrderStatus.REQUESTED}
        where = order_list.ORDER_FILTERS.where(filters, under_wing(actor, LicenceOrder.company_path))
        clauses.append("o.id IN (SELECT licence_order.id FROM licence_order WHERE {})")
        args.append(where.querystring)
    if not clauses:
        return []
    rows = await Company.raw(
        "SELECT o.id, o.quantity, o.company, company.name AS company_name, p.name AS product_name, o.renews_batch "
        "FROM licence_order AS o JOIN company ON company.id = o.company JOIN product AS p ON p.id = o.product "
        f"WHERE {{}} AND o.status = 'requested' AND ({' OR '.join(clauses)}) "
        "ORDER BY company.name, o.requested_at, o.id",
        *args,
    )
    items = [
        Item(
            r["company"],
            r["company_name"],
            r["id"],
            f"Order of {r['quantity']:,} × {order_list.short_product_name(r['product_name'])}"
            + (" (a renewal)" if r["renews_batch"] else ""),
            r["quantity"],
        )
        for r in rows
    ]
    found = {r["company"] for r in rows}
    nothing = "Nothing to assign: no order is waiting for Assign."
    items += [
        Item(c["id"], c["name"], None, "Requested orders", skip=nothing) for c in customers if c["id"] not in found
    ]
    return items


async def _allocate(actor: Actor, selection: Selection, now: datetime) -> list[Item]:
    customers = await _customers(actor, selection, now)
    if not customers:
        return []
    ids = _ids([c["id"] for c in customers])
    free = {
        r["company"]: int(r["free"] or 0)
        for r in await Company.raw(
            "SELECT company, SUM(seats - allocated) AS free FROM licence_batch "
            f"WHERE company IN ({ids}) AND starts_at <= {{}} AND ends_at > {{}} GROUP BY company",
            now,
            now,
        )
    }
    waiting = {
        r["company"]: int(r["waiting"] or 0)
        for r in await Company.raw(
            "SELECT company, SUM(users) AS waiting FROM licence_tally "
            f"WHERE company IN ({ids}) AND (ends_at IS NULL OR ends_at <= {{}}) GROUP BY company",
            now,
        )
    }
    items = []
    for c in customers:
        f, w = free.get(c["id"], 0), waiting.get(c["id"], 0)
        label = f"{f:,} free seat{'' if f == 1 else 's'}, {w:,} user{'' if w == 1 else 's'} waiting"
        skip = "" if f and w else ("No free seats." if not f else "No users waiting for a seat.")
        items.append(Item(c["id"], c["name"], None, label, min(f, w), skip))
    return items


async def _auto_renew(actor: Actor, selection: Selection, now: datetime) -> list[Item]:
    customers = await _customers(actor, selection, now)
    if not customers:
        return []
    on = {
        r["company"]
        for r in await Company.raw(
            f"SELECT company FROM auto_renewal WHERE company IN ({_ids([c['id'] for c in customers])}) "
            "AND mode = 'renew'"
        )
    }
    already = "Already on: renewed automatically."
    return [
        Item(c["id"], c["name"], None, "Automatic renewal", skip=already if c["id"] in on else "") for c in customers
    ]


_RESOLVE = {"renew": _renew, "assign": _assign, "allocate": _allocate, "auto_renew": _auto_renew}


async def plan(actor: Actor, selection: Selection, now: datetime) -> Plan:
    """What the action would do for the selection at `now`: its items, each
    customer's batch, order or the customer itself, and those known to have
    nothing to do, with why."""
    require_partner_manager(actor)
    selection.check()
    return Plan(selection.action, await _RESOLVE[selection.action](actor, selection, now))
