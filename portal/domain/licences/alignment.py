"""Aligning a customer's batches to one renewal date: a partner manager picks a
date, sees each running batch with its end and what moving that end costs (a
charge, extending) or gives back (a credit, shortening), pro rata as co-termed
seats are priced (licences.coterm), and confirms; the new ends are written in
one transaction, audited, and refused if the batches changed since the preview.

Not moved: a trial (it ends by itself), a batch already renewed (its renewal
starts where it ends) and a subscription's term (its billing holds that end)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, get_company, require_partner_manager
from portal.domain.billing import money
from portal.domain.errors import ValidationFailed
from portal.domain.licences import coterm
from portal.tables import Allocation, Company, CompanyKind, LicenceBatch, User
from portal.tables.billing import Subscription


@dataclass(frozen=True)
class Move:
    """One running batch: its end now, and what moving it to the target does."""

    batch_id: int
    product_name: str
    seats: int
    allocated: int
    ends_at: datetime
    target: datetime
    kept: str | None  # why it is not moved; None: it moves
    change_cents: int | None  # + a charge (extended), - a credit (shortened); None: no price

    @property
    def moves(self) -> bool:
        return self.kept is None and self.ends_at != self.target

    @property
    def days(self) -> int:
        """Days added (+) or taken off (-)."""
        if not self.moves:
            return 0
        if self.target > self.ends_at:
            return money.days_left(self.target, self.ends_at)
        return -money.days_left(self.ends_at, self.target)


@dataclass(frozen=True)
class Alignment:
    company: dict[str, Any]
    target: datetime
    moves: list[Move]
    price: coterm.SeatPrice | None

    @property
    def moving(self) -> list[Move]:
        return [m for m in self.moves if m.moves]

    @property
    def total_cents(self) -> int | None:
        if self.price is None:
            return None
        return sum(m.change_cents or 0 for m in self.moving)

    @property
    def version(self) -> str:
        """The ends the preview shows; Confirm is refused unless they still hold."""
        return ",".join(f"{m.batch_id}:{m.ends_at.timestamp():.0f}" for m in self.moves)

    def money(self, cents: int) -> str:
        return money.format_money(cents, self.price.currency) if self.price else ""


def target_instant(day: date, current_end: datetime | None) -> datetime:
    """The chosen day at the time of day of the current term's end (midnight UTC
    without one), so choosing that term's end date aligns to it exactly."""
    clock = current_end.astimezone(UTC).timetz() if current_end else datetime.min.time().replace(tzinfo=UTC)
    return datetime.combine(day, clock)


async def preview(actor: Actor, company_id: int, day: date | None, now: datetime) -> Alignment:
    """The customer's running batches and what moving them all to `day` does;
    `day` None: the current term's end."""
    company = await get_company(actor, company_id)  # outside the wing: not found, before the role
    require_partner_manager(actor)
    if company["kind"] != CompanyKind.CUSTOMER:
        raise ValidationFailed({"target": "Licenses are held by customer companies."})
    current_end = await coterm.current_term_end(company["id"], now)
    if day is None:
        if current_end is None:
            raise ValidationFailed({"target": f"{company['name']} holds no running licenses to align."})
        day = current_end.astimezone(UTC).date()
    target = target_instant(day, current_end)
    if target <= now:
        raise ValidationFailed({"target": "Choose a date after today."})
    if target > money.term_end(now):
        raise ValidationFailed({"target": "Choose a date within 12 months from now."})
    rows = (
        await LicenceBatch.select(
            LicenceBatch.id,
            LicenceBatch.product,
            LicenceBatch.product.name.as_alias("product_name"),
            LicenceBatch.product.is_trial.as_alias("is_trial"),
            LicenceBatch.seats,
            LicenceBatch.allocated,
            LicenceBatch.starts_at,
            LicenceBatch.ends_at,
        )
        .where((LicenceBatch.company == company["id"]) & (LicenceBatch.ends_at > now) & (LicenceBatch.starts_at <= now))
        .order_by(LicenceBatch.ends_at)
        .order_by(LicenceBatch.id)
    )
    later = await LicenceBatch.select(LicenceBatch.product, LicenceBatch.starts_at).where(
        (LicenceBatch.company == company["id"]) & (LicenceBatch.starts_at > now)
    )
    renewed_at = {(r["product"], r["starts_at"]) for r in later}
    terms = {
        r["term_end"]
        for r in await Subscription.select(Subscription.term_end).where(
            (Subscription.company == company["id"]) & Subscription.term_end.is_not_null()
        )
    }
    price = await coterm.seat_price(company["id"])
    moves = []
    for row in rows:
        kept = None
        if row["is_trial"]:
            kept = "a Free trial: it ends by itself"
        elif (row["product"], row["ends_at"]) in renewed_at:
            kept = "already renewed: its renewal starts when it ends"
        elif row["ends_at"] in terms:
            kept = "a subscription's term: billing renews it"
        change = None
        if price is not None and kept is None:
            amount = row["seats"] * price.yearly_cents
            if target > row["ends_at"]:
                change = money.prorate_to(amount, row["ends_at"], target)
            else:
                change = -money.prorate_to(amount, target, row["ends_at"])
        moves.append(
            Move(
                row["id"],
                row["product_name"],
                row["seats"],
                row["allocated"],
                row["ends_at"],
                target,
                kept,
                change,
            )
        )
    return Alignment(company, target, moves, price)


async def align(actor: Actor, company_id: int, day: date | None, version: str, now: datetime) -> Alignment:
    """Confirm: every batch the preview moves ends at the target, with its seats
    and its holders' licence ends (which the dashboard's triggers follow); refused,
    nothing written, if any batch's end changed or a batch came or went since."""
    await get_company(actor, company_id)  # outside the wing: not found, and nothing locked
    async with db.write_transaction():
        # Allocating and renewing take the company's lock; so does this, so the ends read are the ends written.
        await db.for_update(Company.select(Company.id).where(Company.id == company_id))
        plan = await preview(actor, company_id, day, now)
        if plan.version != version:
            raise ValidationFailed(
                {"target": "The batches changed since this preview: check the new preview and confirm again."}
            )
        ids = [m.batch_id for m in plan.moving]
        if not ids:
            raise ValidationFailed({"target": "Every batch already ends then: nothing to change."})
        await LicenceBatch.update({LicenceBatch.ends_at: plan.target}).where(LicenceBatch.id.is_in(ids))
        await Allocation.update({Allocation.ends_at: plan.target}).where(
            Allocation.batch.is_in(ids) & Allocation.released_at.is_null()
        )
        # A holder's licence ends with their latest seat, whichever batch holds it: one statement for all.
        batch_ids = ", ".join(str(int(i)) for i in ids)
        await User.raw(
            "UPDATE portal_user SET licence_ends_at = (SELECT MAX(a.ends_at) FROM allocation AS a "
            'WHERE a."user" = portal_user.id AND a.released_at IS NULL) '
            'WHERE active AND id IN (SELECT a."user" FROM allocation AS a '
            f"WHERE a.batch IN ({batch_ids}) AND a.released_at IS NULL)"
        )
        await audit.record(
            actor,
            "batches.align",
            plan.company["id"],
            now,
            {
                "target": plan.target.isoformat(),
                "batches": [
                    {"batch": m.batch_id, "from": m.ends_at.isoformat(), "change_cents": m.change_cents}
                    for m in plan.moving
                ],
            }
            | ({"total_cents": plan.total_cents, "currency": plan.price.currency} if plan.price else {}),
        )
    return plan
