"""Giving seats out ("Allocate Licenses", "Select All") and freeing a leaver's.

Every change of seats takes the company's write lock, so no batch ever holds
more allocations than seats, however many managers click at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from piccolo.custom_types import Combinable

from portal import db
from portal.domain import audit, staff
from portal.domain.access import Actor, Capability, get_company, get_user, may_act_on, require
from portal.domain.errors import DomainError, NotFound, ValidationFailed
from portal.domain.licences.batches import BatchRow, _batches, seats_to_take
from portal.domain.licences.tabs import _people, _search, _tab_clause
from portal.tables import Allocation, Company, LicenceBatch, User


@dataclass(frozen=True)
class Selection:
    """Who "Allocate Licenses" is for: ticked users, or "Select All" users of a
    tab matching its search, across every page."""

    user_ids: tuple[int, ...] = ()
    select_all_tab: str | None = None
    q: str = ""

    def clause(self, now: datetime) -> Combinable:
        if self.select_all_tab:
            return _tab_clause(self.select_all_tab, now) & _search(self.q)
        if not self.user_ids:
            raise ValidationFailed({"selection": "Select at least one user."})
        return User.id.is_in(list(self.user_ids))


class NotEnoughSeats(DomainError):
    def __init__(self, free: int, selected: int, batch_id: int | None) -> None:
        if batch_id is None:
            message = "No running license batch has a free seat. Request Licenses; allocate once they are assigned."
        else:
            seats = "seat is" if free == 1 else "seats are"
            message = f"{selected} users are selected but only {free} {seats} free. Nothing was allocated."
        super().__init__(message)
        self.free, self.selected, self.batch_id = free, selected, batch_id


@dataclass(frozen=True)
class Allocated:
    renewed: int
    batch_id: int
    ends_at: datetime
    already_covered: int  # selected users whose seat already runs past this batch's end
    batch_starts_at: datetime | None = None  # when the batch was assigned: how a person names it


@dataclass(frozen=True)
class SelectAllView:
    """What "Select All" confirms before anything is allocated."""

    company: dict[str, Any]
    selection: Selection
    count: int
    running: list[BatchRow]  # running batches with a free seat, ending soonest first
    preselected: int | None  # the first of them with a seat for everyone selected


async def select_all_view(actor: Actor, company_id: int, selection: Selection, now: datetime) -> SelectAllView:
    company = await get_company(actor, company_id)
    count = await User.count().where(_people(company["id"]) & selection.clause(now))
    running = seats_to_take(await _batches(company["id"], now))
    fits = next((b["id"] for b in running if b["free"] >= count), None)
    return SelectAllView(company, selection, count, running, fits)


async def allocate(
    actor: Actor,
    company_id: int,
    selection: Selection,
    now: datetime,
    batch_id: int | None = None,
    up_to_free: bool = False,
) -> Allocated:
    """Give each selected user a seat of one running batch: the one chosen, or
    the one that ends first and has free seats. When fewer seats are free than
    users selected, nothing is allocated (NotEnoughSeats), unless `up_to_free`:
    then the first users by name get the seats there are.

    A seat of a batch covers from now, or, for a user renewing early, from the
    end of their current seat, to the batch's end; a user whose seat already
    runs past the batch's end gets none.

    Ticked ids that are not the company's active users (another company's,
    deactivated, or no one's) refuse the whole allocation (ValidationFailed):
    the form was tampered with or is stale, and renewing the rest would answer
    "done" to a request that was not what the page showed."""
    require(actor, Capability.LICENCES)
    company = await get_company(actor, company_id)
    async with db.write_transaction():
        await db.for_update(Company.select(Company.id).where(Company.id == company["id"]))
        await _check_ticked(company, selection)
        batch = await _pick_batch(company["id"], batch_id, now)
        free = batch["seats"] - batch["allocated"]
        chosen = _people(company["id"]) & selection.clause(now)
        eligible = chosen & (User.licence_ends_at.is_null() | (User.licence_ends_at < batch["ends_at"]))
        selected = await User.count().where(chosen)
        wanted = await User.count().where(eligible)
        if wanted > free and not up_to_free:
            raise NotEnoughSeats(free, wanted, batch["id"])
        take = min(wanted, free)
        if take:
            await _insert_allocations(eligible, batch, take, actor, now)
            await LicenceBatch.update({LicenceBatch.allocated: LicenceBatch.allocated + take}).where(
                LicenceBatch.id == batch["id"]
            )
        await audit.record(
            actor,
            "licences.allocate",
            company["id"],
            now,
            {"batch": batch["id"], "renewed": take, "selected": selected},
        )
    return Allocated(
        renewed=take,
        batch_id=batch["id"],
        ends_at=batch["ends_at"],
        already_covered=selected - wanted,
        batch_starts_at=batch["starts_at"],
    )


async def _check_ticked(company: dict[str, Any], selection: Selection) -> None:
    if selection.select_all_tab or not selection.user_ids:
        return
    ticked = set(selection.user_ids)
    theirs = await User.count().where(_people(company["id"]) & User.id.is_in(list(ticked)))
    if theirs != len(ticked):
        raise _not_theirs(company)


def _not_theirs(company: dict[str, Any]) -> ValidationFailed:
    return ValidationFailed(
        {
            "selection": f"Some of the selected users are not users of {company['name']} "
            "(or no longer active). Nothing was allocated; reload the page and select again."
        }
    )


async def _pick_batch(company_id: int, batch_id: int | None, now: datetime) -> dict[str, Any]:
    running = (LicenceBatch.company == company_id) & (LicenceBatch.starts_at <= now) & (LicenceBatch.ends_at > now)
    if batch_id is not None:
        batch = await LicenceBatch.select().where(running & (LicenceBatch.id == batch_id)).first()
        if batch is None:
            raise NotFound("That batch is not running for this company; choose another.")
        return batch
    batch = (
        await LicenceBatch.select()
        .where(running & (LicenceBatch.seats > LicenceBatch.allocated))
        .order_by(LicenceBatch.ends_at)
        .first()
    )
    if batch is None:
        raise NotEnoughSeats(0, 0, None)
    return batch


async def _insert_allocations(
    eligible: Combinable, batch: dict[str, Any], take: int, actor: Actor, now: datetime
) -> None:
    """Set-based: one INSERT … SELECT for the seats, one UPDATE for the users'
    licence end; 50,000 users cost two statements, not 100,000."""
    await User.raw(
        'INSERT INTO allocation (batch, "user", allocated_at, allocated_by, starts_at, ends_at, released_at) '
        "SELECT {}, id, {}, {}, CASE WHEN licence_ends_at > {} THEN licence_ends_at ELSE {} END, {}, NULL "
        "FROM portal_user WHERE {} ORDER BY name, id LIMIT {}",
        batch["id"],
        now,
        actor.user_id,
        now,
        now,
        batch["ends_at"],
        eligible.querystring,
        take,
    )
    await User.update({User.licence_ends_at: batch["ends_at"]}).where(
        User.id.is_in(
            Allocation.select(Allocation.user).where(
                (Allocation.batch == batch["id"]) & (Allocation.allocated_at == now)
            )
        )
    )


# `allocate`'s rule for one learner, as one statement (PostgreSQL): the running
# batch with a free seat that ends first; a seat of it from now (or from the end
# of the learner's current seat) to its end, unless the learner is covered past
# it; the batch's count and the learner's licence end moved with it; and the
# audit entry `allocate` writes, with the same detail. Read under the company's
# lock, which the caller's earlier statement took, so the snapshot already holds
# every seat given before.
_NEW_LEARNER_SQL = """
WITH person AS (
  SELECT id, licence_ends_at FROM portal_user WHERE id = {} AND company = {} AND active
), batch AS (
  SELECT id, ends_at FROM licence_batch
  WHERE company = {} AND starts_at <= {} AND ends_at > {} AND seats > allocated
  ORDER BY ends_at, id LIMIT 1
), seat AS (
  INSERT INTO allocation (batch, "user", allocated_at, allocated_by, starts_at, ends_at, released_at)
  SELECT batch.id, person.id, {}, {},
         CASE WHEN person.licence_ends_at > {} THEN person.licence_ends_at ELSE {} END, batch.ends_at, NULL
  FROM person, batch WHERE person.licence_ends_at IS NULL OR person.licence_ends_at < batch.ends_at
  RETURNING batch, "user", ends_at
), counted AS (
  UPDATE licence_batch SET allocated = allocated + 1 FROM seat WHERE licence_batch.id = seat.batch
), licensed AS (
  UPDATE portal_user SET licence_ends_at = seat.ends_at FROM seat WHERE portal_user.id = seat."user"
), audited AS (
  INSERT INTO audit_entry (at, actor, acting_as, company, action, detail)
  SELECT {}, {}, {}, {}, 'licences.allocate', CAST(
    '{{"batch": ' || batch.id || ', "renewed": ' || (SELECT count(*) FROM seat) || ', "selected": 1}}' AS json)
  FROM person, batch
)
SELECT (SELECT count(*) FROM person) AS theirs, (SELECT count(*) FROM seat) AS renewed
"""


async def allocate_new_learner(
    actor: Actor, company_id: int, user_id: int, now: datetime, *, locked_company: dict[str, Any] | None = None
) -> bool:
    """A new learner gets a free seat, if the company has one; no error if not.
    (Expired learners are never renewed by themselves: they may have left.)
    What `allocate` writes for this one user, in one statement on PostgreSQL:
    every learner added (Add User, SCIM, a reactivation) pays for one seat, not
    for a general selection. `locked_company`: the company's row, when the
    caller's transaction already holds its lock (`db.lock_company`). SQLite has
    no statements that write several tables, and no round trips to save: it
    runs `allocate` itself."""
    require(actor, Capability.LICENCES)
    # Two algorithms, not one statement spelt twice (see above): SQLite runs `allocate`.
    if not db.is_postgres():
        try:
            result = await allocate(actor, company_id, Selection(user_ids=(user_id,)), now)
        except NotEnoughSeats:
            return False
        return result.renewed == 1
    async with db.write_transaction():
        company = locked_company or await db.lock_company(company_id)
        if company is None or company["id"] != company_id or not may_act_on(actor, company["path"]):
            raise NotFound("No such company.")
        rows = await User.raw(
            _NEW_LEARNER_SQL,
            *(user_id, company_id),
            *(company_id, now, now),
            *(now, actor.user_id, now, now),
            *(now, actor.user_id, actor.managing_id, company_id),
        )
        if not rows[0]["theirs"]:
            raise _not_theirs(company)  # and the statement wrote nothing, as `allocate` refuses
    return cast("bool", rows[0]["renewed"] == 1)


async def deactivate_user(actor: Actor, user_id: int, now: datetime) -> int:
    """A learner who left: deactivated, and their running seat freed for someone
    else, for the batch's remaining time. Returns the seats freed."""
    user = await get_user(actor, user_id)
    company = await get_company(actor, user["company"])
    require(actor, Capability.STAFF if staff.is_staff(company) else Capability.CUSTOMERS)
    if user["id"] == actor.user_id:
        raise ValidationFailed({"user": "You cannot deactivate yourself."})
    async with db.write_transaction():
        await db.for_update(Company.select(Company.id).where(Company.id == user["company"]))
        await staff.check_keeps_an_admin(company, user)
        held = await Allocation.select(Allocation.id, Allocation.batch).where(
            (Allocation.user == user["id"]) & Allocation.released_at.is_null() & (Allocation.ends_at > now)
        )
        if held:
            # One seat per batch: a user already covered to a batch's end is never given another of it.
            await LicenceBatch.update({LicenceBatch.allocated: LicenceBatch.allocated - 1}).where(
                LicenceBatch.id.is_in([seat["batch"] for seat in held])
            )
            await Allocation.update({Allocation.released_at: now, Allocation.ends_at: now}).where(
                Allocation.id.is_in([seat["id"] for seat in held])
            )
        await User.update({User.active: False, User.licence_ends_at: now if held else user["licence_ends_at"]}).where(
            User.id == user["id"]
        )
        await audit.record(actor, "user.deactivate", user["company"], now, {"user": user["email"], "freed": len(held)})
    return len(held)
