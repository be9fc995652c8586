"""A paid term's seats as the licence model holds them: an assigned order and its
batch (product "sat-premium"), so they show and allocate like any other order.

The invariants of portal/domain/licences.py hold here too, set-based: the
company's write lock is taken first; no batch gets more allocations than seats;
`licence_batch.allocated` counts the seats held; a holder's `licence_ends_at` is
the end of their latest seat (the licence_tally triggers follow it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from portal import db
from portal.domain import catalogue, outbox
from portal.domain.billing.quotes import format_day
from portal.domain.orders.decisions import InvalidTransition, end_running_trials
from portal.tables import Company, LicenceBatch, LicenceOrder


async def provision_term(
    subscription: dict,
    *,
    seats: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    carry_holders: bool = False,
    order_id: int | None = None,
    actor_id: int | None = None,
    notify: bool = False,
) -> dict:
    """An assigned LicenceOrder + LicenceBatch for the subscription's company,
    inside the caller's transaction; returns the batch row (with `allocated`).

    - `order_id`: assign that `requested` order (an invoice purchase's) instead
      of writing a new one; its quantity becomes `seats`.
    - `carry_holders`: the seat holders of the term ending where this one starts
      keep their seats (`carry_over`).
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
                    status="assigned",
                    requested_by=actor_id,
                    requested_at=now,
                    decided_by=actor_id,
                    decided_at=now,
                )
            ).returning(LicenceOrder.id)
        )[0]
        order_id = order["id"]
    else:
        assigned = (
            await LicenceOrder.update(
                {
                    LicenceOrder.status: "assigned",
                    LicenceOrder.quantity: seats,
                    LicenceOrder.decided_by: actor_id,
                    LicenceOrder.decided_at: now,
                }
            )
            .where((LicenceOrder.id == order_id) & (LicenceOrder.status == "requested"))
            .returning(LicenceOrder.id)
        )
        if not assigned:
            current = await LicenceOrder.select(LicenceOrder.status).where(LicenceOrder.id == order_id).first()
            raise InvalidTransition(current["status"] if current else "gone", "assigned")
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
        await _notify_ready(company_id, order_id, seats, product["name"], ends_at, now)
    return batch


async def carry_over(batch_ids: Sequence[int], now: datetime) -> dict[int, int]:
    """The rule for every next term, whichever path pays for it (the renewal job
    for a chunk, a recorded payment for one): the seat holders of the term that
    ends where each new batch starts (every Premium batch of its company ending
    at that instant: the subscription's, and those of users added during the
    term) get a seat of the new batch from its start, first allocated first, up
    to its seats; users whose seat already runs to the new end keep theirs.

    Three statements whatever the number of batches and holders, inside the
    caller's transaction (which holds the companies' seat locks). Returns each
    new batch's seats held."""
    if not batch_ids:
        return {}
    ids = ", ".join(str(int(i)) for i in batch_ids)
    await Company.raw(
        'INSERT INTO allocation (batch, "user", allocated_at, allocated_by, starts_at, ends_at, released_at) '
        f"SELECT new_batch, holder, {db.timestamp_param()}, NULL, starts_at, ends_at, NULL FROM ("
        ' SELECT nb.id AS new_batch, nb.starts_at, nb.ends_at, nb.seats, a."user" AS holder,'
        "  ROW_NUMBER() OVER (PARTITION BY nb.id ORDER BY MIN(a.id)) AS n"
        " FROM licence_batch AS nb"
        " JOIN licence_batch AS ob ON ob.company = nb.company AND ob.ends_at = nb.starts_at"
        " AND ob.product = nb.product AND ob.id <> nb.id"
        " JOIN allocation AS a ON a.batch = ob.id AND a.released_at IS NULL"
        ' JOIN portal_user AS u ON u.id = a."user" AND u.active'
        f" WHERE nb.id IN ({ids}) AND (u.licence_ends_at IS NULL OR u.licence_ends_at < nb.ends_at)"
        ' GROUP BY nb.id, nb.starts_at, nb.ends_at, nb.seats, a."user"'
        ") AS held WHERE n <= seats",
        now,
    )
    await Company.raw(
        "UPDATE portal_user SET licence_ends_at = nb.ends_at FROM allocation AS a "
        "JOIN licence_batch AS nb ON nb.id = a.batch "
        f'WHERE a."user" = portal_user.id AND a.released_at IS NULL AND nb.id IN ({ids}) '
        "AND (portal_user.licence_ends_at IS NULL OR portal_user.licence_ends_at < nb.ends_at)"
    )
    counted = await Company.raw(
        "UPDATE licence_batch SET allocated = (SELECT COUNT(*) FROM allocation AS a "
        f"WHERE a.batch = licence_batch.id AND a.released_at IS NULL) WHERE id IN ({ids}) RETURNING id, allocated"
    )
    return {row["id"]: row["allocated"] for row in counted}


async def _notify_ready(
    company_id: int, order_id: int, seats: int, product_name: str, ends_at: datetime, now: datetime
) -> None:
    company = await Company.select(Company.name).where(Company.id == company_id).first()
    assert company is not None, "a subscription's company is a foreign key"
    await outbox.queue_email(
        "order_assigned",
        company_id,
        await outbox.managers_of(company_id),
        f"{seats} licenses are ready to allocate",
        f"{seats} × {product_name} for {company['name']} are paid for and ready to allocate.\n"
        f"They run until {format_day(ends_at)}.\n\n"
        "Allocate them under Licenses → Expired Licenses → Select users Manually:\n"
        + outbox.link(f"/companies/{company_id}/licences?tab=expired"),
        now,
        dedupe=f"order_assigned:{order_id}",
    )
