"""A paid term's seats as the licence model holds them: an assigned order and its
batch (product "sat-premium"), so they show and allocate like any other order.

The invariants of portal/domain/licences.py hold here too, set-based: the
company's write lock is taken first; no batch gets more allocations than seats;
`licence_batch.allocated` counts the seats held; a holder's `licence_ends_at` is
the end of their latest seat (the licence_tally triggers follow it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal import db
from portal.domain import catalogue, outbox
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.emails.queue import queue_kind
from portal.domain.licences.plans import plan_label
from portal.domain.licences.renewals import carry_over
from portal.domain.orders.decisions import InvalidTransition, end_running_trials
from portal.tables import Company, LicenceBatch, LicenceOrder, OrderStatus


async def provision_term(
    subscription: dict[str, Any],
    *,
    seats: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    carry_holders: bool = False,
    order_id: int | None = None,
    actor_id: int | None = None,
    notify: bool = False,
) -> dict[str, Any]:
    """An assigned LicenceOrder + LicenceBatch for the subscription's company,
    inside the caller's transaction; returns the batch row (with `allocated`).

    - `order_id`: assign that `requested` order (an invoice purchase's) instead
      of writing a new one; its quantity becomes `seats`.
    - `carry_holders`: a renewal: the seat holders of the term ending where this
      one starts keep their seats (licences.renewals.carry_over), and the order
      records the subscription's batch as the one it renews.
    - `notify`: e-mail the company's managers that the seats are ready.

    The subscription row is not touched: the caller sets its term and batch."""
    if seats < 1:
        raise ValueError(f"a batch has at least one seat, not {seats}")
    company_id = subscription["company"]
    product = await catalogue.product_by_code(catalogue.PREMIUM)
    # The company's write lock, as every change of seats takes it (licences.allocation.allocate).
    await db.for_update(Company.select(Company.id).where(Company.id == company_id))
    if order_id is None:
        order = (
            await LicenceOrder.insert(
                LicenceOrder(
                    company=company_id,
                    # The database sets it too; given so SQLite's RETURNING has it.
                    company_path=subscription["company_path"],
                    product=product["id"],
                    quantity=seats,
                    status=OrderStatus.ASSIGNED,
                    requested_by=actor_id,
                    requested_at=now,
                    decided_by=actor_id,
                    decided_at=now,
                    renews_batch=subscription.get("batch") if carry_holders else None,
                )
            ).returning(LicenceOrder.id)
        )[0]
        order_id = order["id"]
    else:
        assigned = (
            await LicenceOrder.update(
                {
                    LicenceOrder.status: OrderStatus.ASSIGNED,
                    LicenceOrder.quantity: seats,
                    LicenceOrder.decided_by: actor_id,
                    LicenceOrder.decided_at: now,
                }
            )
            .where((LicenceOrder.id == order_id) & (LicenceOrder.status == OrderStatus.REQUESTED))
            .returning(LicenceOrder.id)
        )
        if not assigned:
            current = await LicenceOrder.select(LicenceOrder.status).where(LicenceOrder.id == order_id).first()
            raise InvalidTransition(current["status"] if current else "gone", OrderStatus.ASSIGNED)
    batch = (
        await LicenceBatch.insert(
            LicenceBatch(
                order=order_id,
                company=company_id,
                product=product["id"],
                seats=seats,
                allocated=0,
                starts_at=starts_at,
                ends_at=ends_at,
            )
        ).returning(*LicenceBatch.all_columns())
    )[0]
    if starts_at <= now:
        # A paid batch upgrades a trial (orders.decisions.assign_order does the same).
        await end_running_trials(company_id, now)
    if carry_holders:
        batch["allocated"] = (await carry_over([batch["id"]], now))[batch["id"]]
    if notify:
        await _notify_ready(company_id, order_id, seats, await _plan_name(subscription), ends_at, now)
    return batch


async def _plan_name(subscription: dict[str, Any]) -> str:
    """The seats are named by the subscription's plan, as the pages name its batches."""
    items = {row["code"]: row for row in await billing_catalogue.items(subscription["partner"])}
    tier = items.get(subscription["tier"])
    return plan_label(tier["name"] if tier else subscription["tier"])


async def _notify_ready(
    company_id: int, order_id: int, seats: int, product_name: str, ends_at: datetime, now: datetime
) -> None:
    company = await Company.select(Company.name).where(Company.id == company_id).first()
    assert company is not None, "a subscription's company is a foreign key"
    await queue_kind(
        "order_assigned",
        company_id,
        await outbox.managers_of(company_id),
        {
            "company_id": company_id,
            "company_name": company["name"],
            "quantity": seats,
            "product_name": product_name,
            "paid": True,
            "renewal": False,
            "starts_at": None,
            "ends_at": ends_at,
            "cotermed": False,
            "moving": 0,
        },
        now,
        dedupe=f"order_assigned:{order_id}",
    )
