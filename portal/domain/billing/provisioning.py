"""A paid term's seats as the licence model holds them: an assigned order and its
batch (product "sat-premium"), so they show and allocate like any other order.

The invariants of portal/domain/licences.py hold here too, set-based: the
company's write lock is taken first; no batch gets more allocations than seats;
`licence_batch.allocated` counts the seats held; a holder's `licence_ends_at` is
the end of their latest seat (the licence_tally triggers follow it)."""

from __future__ import annotations

from datetime import datetime

from portal import db
from portal.domain import catalogue, outbox
from portal.domain.orders import InvalidTransition, end_running_trials
from portal.tables import Allocation, Company, LicenceBatch, LicenceOrder, User


async def provision_term(
    subscription: dict,
    *,
    seats: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    carry_over_batch: int | None = None,
    order_id: int | None = None,
    actor_id: int | None = None,
    notify: bool = False,
) -> dict:
    """An assigned LicenceOrder + LicenceBatch for the subscription's company,
    inside the caller's transaction; returns the batch row (with `allocated`).

    - `order_id`: assign that `requested` order (an invoice purchase's) instead
      of writing a new one; its quantity becomes `seats`.
    - `carry_over_batch`: the seat holders of that batch (seats not released,
      users still active) get a seat of the new one from its start, as many as it
      has seats, by name; anyone already covered past its end is left alone.
    - `notify`: e-mail the company's managers that the seats are ready.

    The subscription row is not touched: the caller sets its term and batch."""
    if seats < 1:
        raise ValueError(f"a batch has at least one seat, not {seats}")
    company_id = subscription["company"]
    product = await catalogue.product_by_code(catalogue.PREMIUM)
    # The company's write lock, as every change of seats takes it (licences.allocate).
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
        # A paid batch upgrades a trial (orders.assign_order does the same).
        await end_running_trials(company_id, now)
    if carry_over_batch is not None:
        batch["allocated"] = await _carry_over(carry_over_batch, batch, company_id, seats, now, actor_id)
    if notify:
        await _notify_ready(company_id, order_id, seats, product["name"], ends_at, now)
    return batch


async def _carry_over(
    old_batch: int, batch: dict, company_id: int, seats: int, now: datetime, actor_id: int | None
) -> int:
    """Three statements whatever the number of holders: an INSERT … SELECT of
    their seats, an UPDATE of their licence end, an UPDATE of the batch's count."""
    stamp = db.timestamp_param()
    await User.raw(
        'INSERT INTO allocation (batch, "user", allocated_at, allocated_by, starts_at, ends_at, released_at) '
        f"SELECT {{}}, u.id, {stamp}, {{}}, "
        f"CASE WHEN u.licence_ends_at > {{}} THEN u.licence_ends_at ELSE {stamp} END, {stamp}, NULL "
        "FROM portal_user AS u WHERE u.active AND u.company = {} "
        "AND (u.licence_ends_at IS NULL OR u.licence_ends_at < {}) "
        'AND u.id IN (SELECT a."user" FROM allocation AS a WHERE a.batch = {} AND a.released_at IS NULL) '
        f"ORDER BY u.name, u.id LIMIT {int(seats)}",
        batch["id"],
        now,
        actor_id,
        batch["starts_at"],
        batch["starts_at"],
        batch["ends_at"],
        company_id,
        batch["ends_at"],
        old_batch,
    )
    held = Allocation.select(Allocation.user).where(Allocation.batch == batch["id"])
    await User.update({User.licence_ends_at: batch["ends_at"]}).where(User.id.is_in(held))
    count = await Allocation.count().where(Allocation.batch == batch["id"])
    await LicenceBatch.update({LicenceBatch.allocated: count}).where(LicenceBatch.id == batch["id"])
    return count


async def _notify_ready(
    company_id: int, order_id: int, seats: int, product_name: str, ends_at: datetime, now: datetime
) -> None:
    company = await Company.select(Company.name).where(Company.id == company_id).first()
    assert company is not None, "a subscription's company is a foreign key"
    await outbox.queue_email(
        "order_assigned",
        company_id,
        await outbox.managers_of(company_id),
        f"{seats} licences are ready to allocate",
        f"{seats} × {product_name} for {company['name']} are paid for and ready to allocate.\n"
        f"They run until {ends_at:%d %B %Y}.\n\n"
        "Allocate them under Licenses → Expired Licenses → Select users Manually:\n"
        + outbox.link(f"/companies/{company_id}/licences?tab=expired"),
        now,
        dedupe=f"order_assigned:{order_id}",
    )
