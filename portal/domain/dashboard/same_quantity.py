""" "Renew same quantity": what it will do, and the order it places: a renewal
of the batch (licence_order.renews_batch), which continues it for its holders."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal import db
from portal.domain import catalogue, partner_settings
from portal.domain.access import Actor, get_company, require_partner_manager, under_wing
from portal.domain.dashboard.figures import SOON
from portal.domain.dashboard.wing_batches import _BATCHES_SQL, describe_batch
from portal.domain.emails import queue as emails
from portal.domain.errors import ValidationFailed
from portal.domain.licences import renewals
from portal.domain.orders import decisions, requests
from portal.tables import ACCOUNT_ROLES, Company, CompanyKind, LicenceBatch, LicenceOrder, OrderStatus, User


def refusal(actor: Actor, batch: dict[str, Any], waiting: dict[str, Any] | None, now: datetime) -> str | None:
    """Why a batch (a described row of _BATCHES_SQL) cannot be renewed at the same
    quantity now, or None: the one rule for one batch and for many."""
    if batch["is_trial"]:
        return "A Free trial is not renewed as it is: request Premium licenses instead."
    if batch["subscription_term"]:
        return "This batch is a subscription's term: it renews with the subscription (Billing → Subscriptions)."
    if batch["renewed_at"] is not None:
        return f"This batch was already renewed on {batch['renewed_at']:%d %b %Y}."
    if waiting is not None and not actor.is_partner_manager:
        return f"A renewal of this batch is already waiting for Assign, requested {waiting['requested_at']:%d %b %Y}."
    if abs(batch["ends_at"] - now) > SOON:
        return "Renew same quantity is for batches that end within 30 days."
    return None


async def renewal_offer(actor: Actor, batch_id: int, now: datetime) -> dict[str, Any]:
    """What renewing a batch at the same quantity will do: customer, quantity,
    product, the new term (from the batch's end, to its end, how many holders
    move) and, for a partner manager, the renewal request it assigns if one is
    waiting. Refuses what is not renewable."""
    rows = await LicenceBatch.raw(
        _BATCHES_SQL + " LIMIT 1",
        (Company.id.is_not_null()).querystring,
        (LicenceBatch.id == batch_id).querystring,
    )
    # Through get_company: a batch outside the wing answers NotFound like any other id.
    company = await get_company(actor, rows[0]["company_id"] if rows else 0)
    batch = describe_batch(rows[0], now)
    waiting = (
        await LicenceOrder.select(LicenceOrder.id, LicenceOrder.requested_at)
        .where((LicenceOrder.renews_batch == batch["id"]) & (LicenceOrder.status == OrderStatus.REQUESTED))
        .order_by(LicenceOrder.id)
        .first()
    )
    refused = refusal(actor, batch, waiting, now)
    if refused:
        raise ValidationFailed({"batch": refused})
    product = await catalogue.product(batch["product_id"])
    assert product is not None, "a batch's product is a foreign key"
    renewed = await LicenceBatch.select().where(LicenceBatch.id == batch["id"]).first()
    assert renewed is not None, "just listed"
    term = await renewals.new_term(product, batch["seats"], renewed, now)
    pending = await LicenceOrder.count().where(
        (LicenceOrder.company == company["id"]) & (LicenceOrder.status == OrderStatus.REQUESTED)
    )
    return {
        **batch,
        "company": company,
        "product": product,
        "quantity": batch["seats"],
        "term": term,
        "new_ends_at": term.ends_at,
        "pending": pending,
        "waiting": waiting,
        "assigns": actor.is_partner_manager,
    }


async def renew_same_quantity(actor: Actor, batch_id: int, now: datetime) -> dict[str, Any]:
    """Places the renewal order for the batch's quantity of the same product: for
    a partner manager assigned at once (or, if a renewal request of the batch
    waits, that one assigned) through renew_many, the rule every "Renew" of a
    partner manager follows; for a customer manager a request (status
    Requested). Returns the offer, the order and the new batch (None if only requested)."""
    first = await renewal_offer(actor, batch_id, now)
    if actor.is_partner_manager:
        done = (await renew_many(actor, [batch_id], now))[batch_id]
        if isinstance(done, str):
            raise ValidationFailed({"batch": done})
        return {"order": done.order, "batch": done.batch, "offer": first}
    async with db.write_transaction():
        # Under the company's write lock, and asked again: of two clicks, the second finds it renewed.
        await db.for_update(Company.select(Company.id).where(Company.id == first["company"]["id"]))
        offer = await renewal_offer(actor, batch_id, now)
        if offer["pending"]:
            raise ValidationFailed({"batch": "A request of this company is already waiting for Assign."})
        order = await requests.request_order(
            actor,
            offer["company"]["id"],
            offer["quantity"],
            offer["product_id"],
            "",
            now,
            renews_batch=offer["id"],
        )
    return {"order": order, "batch": None, "offer": offer}


@dataclass(frozen=True)
class Renewed:
    """A batch renew_many renewed: the renewal order (assigned), the new batch
    (with `term`, renewals.NewTerm: from the old end, who moved) and its product."""

    order: dict[str, Any]
    batch: dict[str, Any]
    product: dict[str, Any]


async def renew_many(actor: Actor, batch_ids: Sequence[int], now: datetime) -> dict[int, Renewed | str]:
    """A partner manager's "Renew same quantity" of many batches at once, in one
    transaction and a few statements whatever their number: for each batch, the
    renewal order placed and assigned (or the renewal request waiting for it
    assigned), its new batch from the old end for the product's term, the
    holders carried over (renewals.carry_over), the e-mails and audit entries of
    a request and an Assign. What is not renewable says why (`refusal`, and a
    request's checks: the partner's largest order, an unpaid invoice) and writes
    nothing. Each batch once: under the companies' write locks, in id order, a
    batch renewed meanwhile is refused as renewed."""
    require_partner_manager(actor)
    ids = sorted({int(i) for i in batch_ids})
    if not ids:
        return {}
    outcomes: dict[int, Renewed | str] = {i: "No such batch." for i in ids}
    async with db.write_transaction():
        heads = await LicenceBatch.select(LicenceBatch.company).where(LicenceBatch.id.is_in(ids))
        company_ids = sorted({row["company"] for row in heads})
        if not company_ids:
            return outcomes
        # The seat locks allocating takes, in one order: two runs never wait on each other in a circle.
        await db.for_update(Company.select(Company.id).where(Company.id.is_in(company_ids)).order_by(Company.id))
        rows = await LicenceBatch.raw(
            _BATCHES_SQL + " ORDER BY licence_batch.id",
            under_wing(actor).querystring,
            LicenceBatch.id.is_in(ids).querystring,
        )
        companies = {
            row["id"]: row
            for row in await Company.select(Company.id, Company.name, Company.path, Company.kind).where(
                Company.id.is_in(company_ids)
            )
        }
        waiting: dict[int, dict[str, Any]] = {}
        requested = (
            await LicenceOrder.select()
            .where(LicenceOrder.renews_batch.is_in(ids) & (LicenceOrder.status == OrderStatus.REQUESTED))
            .order_by(LicenceOrder.id)
        )
        for row in requested:
            waiting.setdefault(row["renews_batch"], row)
        limits: dict[str, int] = {}
        todo: list[
            tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any]]
        ] = []  # batch, company, waiting order, product
        for row in rows:
            batch = describe_batch(row, now)
            company = companies[batch["company_id"]]
            request = waiting.get(batch["id"])
            refused = refusal(actor, batch, request, now)
            if refused is None and company["kind"] != CompanyKind.CUSTOMER:
                refused = "Licenses are ordered for customer companies."
            if refused is None and request is None:
                parent = company["path"].rsplit("/", 2)[0] + "/"
                if parent not in limits:
                    limits[parent] = (await partner_settings.for_path(company["path"])).max_order_quantity
                refused = requests.over_limit(batch["seats"], limits[parent])
            if refused is None and request is not None:
                refused = await decisions.unpaid_refusal(request["id"])
            if refused is not None:
                outcomes[batch["id"]] = refused
                continue
            product = await catalogue.product(batch["product_id"])
            assert product is not None, "a batch's product is a foreign key"
            todo.append((batch, company, request, product))
        if not todo:
            return outcomes
        orders = await _place_orders(actor, todo, now)
        made_ids = await LicenceBatch.raw(
            *_rows_insert(
                'INSERT INTO licence_batch ("order", company, product, seats, allocated, starts_at, ends_at) '
                "SELECT r.column1, r.column2, r.column3, r.column4, 0, r.column5, r.column6 FROM {table} AS r "
                "RETURNING id",
                ("int", "int", "int", "int", "time", "time"),
                [
                    (
                        orders[batch["id"]]["id"],
                        batch["company_id"],
                        product["id"],
                        orders[batch["id"]]["quantity"],
                        batch["ends_at"],
                        catalogue.term_end(product, batch["ends_at"]),
                    )
                    for batch, _, _, product in todo
                ],
            )
        )
        new_batches = await LicenceBatch.select().where(LicenceBatch.id.is_in([row["id"] for row in made_ids]))
        await decisions.end_running_trials_of(sorted({company["id"] for _, company, _, _ in todo}), now)
        held = await renewals.carry_over([row["id"] for row in new_batches], now)
        made = {row["order"]: row for row in new_batches}
        renewed: list[tuple[Renewed, dict[str, Any], dict[str, Any] | None]] = []
        for batch, company, request, product in todo:
            order = orders[batch["id"]]
            new = made[order["id"]]
            new["allocated"] = held.get(new["id"], 0)
            new["term"] = renewals.NewTerm(
                new["starts_at"], new["ends_at"], renewals.term_length(product), batch, new["allocated"]
            )
            outcomes[batch["id"]] = Renewed(order, new, product)
            renewed.append((Renewed(order, new, product), company, request))
        await _mails_and_audit(actor, renewed, now)
    return outcomes


def _rows_insert(sql: str, types: tuple[str, ...], rows: list[tuple[Any, ...]], *before: Any) -> tuple[Any, ...]:
    """`sql` with `{table}` standing for `rows` as a table (db.rows_table) and its
    other placeholders bound to `before`: one statement for the chunk."""
    table, values = db.rows_table(types, rows)
    return (sql.replace("{table}", table), *before, *values)


async def _place_orders(
    actor: Actor,
    todo: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any]]],
    now: datetime,
) -> dict[str, Any]:
    """The renewal orders, assigned: new ones for the batches' quantity, and the
    requests waiting for them. By the batch each renews."""
    fresh = [
        (company["id"], company["path"], product["id"], batch["seats"], batch["id"])
        for batch, company, request, product in todo
        if request is None
    ]
    ts = db.timestamp_param()
    placed_ids = (
        await LicenceOrder.raw(
            *_rows_insert(
                "INSERT INTO licence_order (company, company_path, product, quantity, status, requested_by, "
                "requested_at, decided_by, decided_at, renews_batch) "
                f"SELECT r.column1, r.column2, r.column3, r.column4, 'assigned', {{}}, {ts}, {{}}, {ts}, r.column5 "
                "FROM {table} AS r RETURNING id",
                ("int", "text", "int", "int", "int"),
                fresh,
                actor.user_id,
                now,
                actor.user_id,
                now,
            )
        )
        if fresh
        else []
    )
    placed = (
        await LicenceOrder.select().where(LicenceOrder.id.is_in([row["id"] for row in placed_ids]))
        if placed_ids
        else []
    )
    taken = [request["id"] for _, _, request, _ in todo if request is not None]
    if taken:
        placed += (
            await LicenceOrder.update(
                {
                    LicenceOrder.status: OrderStatus.ASSIGNED,
                    LicenceOrder.decided_by: actor.user_id,
                    LicenceOrder.decided_at: now,
                }
            )
            .where(LicenceOrder.id.is_in(taken))
            .returning(*LicenceOrder.all_columns())
        )
    return {order["renews_batch"]: order for order in placed}


AUDIT_COLUMNS = ("at", "actor", "acting_as", "company", "action", "detail", "dedupe_key")


async def _mails_and_audit(
    actor: Actor, renewed: list[tuple[Renewed, dict[str, Any], dict[str, Any] | None]], now: datetime
) -> None:
    """What requests_order and assign_order write for each, written at once: the
    account managers told of a request placed here, the customer's managers that
    licenses are ready, and the audit entries of the request and the Assign."""
    managers: dict[int, list[str]] = defaultdict(list)
    rows = (
        await User.select(User.company, User.email)
        .where(
            User.company.is_in(sorted({company["id"] for _, company, _ in renewed}))
            & User.role.is_in(list(ACCOUNT_ROLES))  # as outbox.managers_of
            & (User.active == True)  # noqa: E712
        )
        .order_by(User.id)
    )
    for row in rows:
        managers[row["company"]].append(row["email"])
    above: dict[str, list[str]] = {}
    mails = emails.Batch(now)
    entries: list[tuple[Any, ...]] = []

    add = mails.add

    def entry(action: str, company_id: int, detail: dict[str, Any]) -> None:
        entries.append((now, actor.user_id, actor.managing_id, company_id, action, json.dumps(detail), None))

    for done, company, request in renewed:
        order, batch, product = done.order, done.batch, done.product
        term = batch["term"]
        if request is None:
            parent = company["path"].rsplit("/", 2)[0] + "/"
            if parent not in above:
                above[parent] = (await requests.nearest_account_managers(company))[1]
            add(
                "order_requested",
                company["id"],
                above[parent],
                {
                    "company_id": company["id"],
                    "company_name": company["name"],
                    "quantity": order["quantity"],
                    "product_name": product["name"],
                    "requested_by": actor.name,
                    "po_number": None,
                    "renewal": True,
                    "renews_ending": None,
                    "coterm_ends_at": None,
                },
                f"order_requested:{order['id']}",
            )
            entry(
                "order.request",
                company["id"],
                {"order": order["id"], "quantity": order["quantity"], "product": product["code"]}
                | {"renews_batch": term.renewed["id"]},
            )
        add(
            "order_assigned",
            company["id"],
            managers.get(company["id"], []),
            {
                "company_id": company["id"],
                "company_name": company["name"],
                "quantity": order["quantity"],
                "product_name": product["name"],
                "paid": False,
                "renewal": True,
                "starts_at": term.starts_at,
                "ends_at": term.ends_at,
                "cotermed": False,
                "moving": term.moving,
            },
            f"order_assigned:{order['id']}",
        )
        entry(
            "order.assign",
            company["id"],
            {"order": order["id"], "batch": batch["id"], "seats": order["quantity"]}
            | {"renews_batch": term.renewed["id"], "moved": term.moving},
        )
    await mails.write()
    await db.copy_rows("audit_entry", AUDIT_COLUMNS, entries)
