"""Seats: who holds one, and giving them out ("Allocate Licenses").

A user's status is read from `licence_ends_at` (the end of their latest seat)
against the clock, so a batch's seats all turn expired the instant it ends,
with no job. Every change of seats takes the company's write lock, so no batch
ever holds more allocations than seats, however many managers click at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, get_company, get_user
from portal.domain.errors import DomainError, NotFound, ValidationFailed
from portal.domain.pages import Page, paginate
from portal.tables import Allocation, Company, LicenceBatch, LicenceTally, User

EXPIRING_WITHIN = timedelta(hours=72)
TABS = ("active", "expired", "unlicensed")


def licence_status(ends_at: datetime | None, now: datetime) -> str:
    if ends_at is None:
        return "unlicensed"
    if ends_at <= now:
        return "expired"
    if ends_at - now <= EXPIRING_WITHIN:
        return "expiring"
    return "active"


def _tab_clause(tab: str, now: datetime) -> Combinable:
    if tab == "active":  # active and expiring alike: they hold a running seat
        return User.licence_ends_at > now
    if tab == "expired":
        return User.licence_ends_at <= now
    if tab == "unlicensed":
        return User.licence_ends_at.is_null()
    raise ValidationFailed({"tab": f"Unknown tab {tab!r}."})


def _people(company_id: int) -> Combinable:
    # `active` written out, not bound as `active = $2`: the partial index
    # (company, licence_ends_at) WHERE active serves only a query that states it,
    # and a cached generic plan cannot see through a parameter (the Unlicensed
    # tab of a 60,000-user customer: 59 ms → 0.2 ms).
    return (User.company == company_id) & WhereRaw("portal_user.active")


@dataclass(frozen=True)
class SeatsAndWaiting:
    free: int  # free seats of running batches only: an ended batch's are of no use
    expired: int
    unlicensed: int


async def seats_and_waiting(company_id: int, now: datetime) -> SeatsAndWaiting:
    """What Request Licenses weighs: the seats the company can still give, and who needs one."""
    counts = await _counts(company_id, now)
    row = (
        await LicenceBatch.raw(
            "SELECT SUM(seats - allocated) AS free FROM licence_batch "
            "WHERE company = {} AND starts_at <= {} AND ends_at > {}",
            company_id,
            now,
            now,
        )
    )[0]
    return SeatsAndWaiting(int(row["free"] or 0), counts["expired"], counts["unlicensed"])


async def tab_counts(actor: Actor, company_id: int, now: datetime) -> dict[str, int]:
    company = await get_company(actor, company_id)
    return await _counts(company["id"], now)


async def _counts(company_id: int, now: datetime) -> dict[str, int]:
    """The three tabs' sizes, from the company's few tally rows (one per licence
    end its users have) rather than from its users, who may be tens of thousands."""
    row = (
        await LicenceTally.raw(
            "SELECT SUM(CASE WHEN ends_at > {} THEN users END) AS active, "
            "SUM(CASE WHEN ends_at <= {} THEN users END) AS expired, "
            "SUM(CASE WHEN ends_at IS NULL THEN users END) AS unlicensed "
            "FROM licence_tally WHERE company = {}",
            now,
            now,
            company_id,
        )
    )[0]
    return {tab: int(row[tab] or 0) for tab in TABS}


# The tally's invariant, as the rows where it disagrees with counting the users
# (none when it is right): checked after every test and by the bench generator.
TALLY_DRIFT_SQL = (
    "SELECT company, ends_at, SUM(n) AS off FROM ("
    " SELECT company, ends_at, users AS n FROM licence_tally"
    " UNION ALL"
    " SELECT company, licence_ends_at, -COUNT(*) FROM portal_user WHERE active GROUP BY company, licence_ends_at"
    ") AS tally GROUP BY company, ends_at HAVING SUM(n) <> 0"
)


async def licence_view(actor: Actor, company_id: int, tab: str, q: str, page: int, now: datetime) -> dict:
    """Everything the Licenses section shows, with one authorization check: the
    company, its batches, the tabs' counts and one page of the chosen tab."""
    company = await get_company(actor, company_id)
    counts = await _counts(company["id"], now)
    batches = await _batches(company["id"], now)
    take_from = seats_to_take(batches)
    view: dict[str, Any] = {
        "company": company,
        "counts": counts,
        "batches": batches,
        "take_from": take_from,
        "take_from_default": longest_running(take_from),
    }
    if tab in TABS:
        view["listing"] = await _tab_page(company["id"], tab, q, page, now, total=None if q else counts[tab])
        view["empty"] = empty_tab_message(tab, q)
    return view


_EMPTY_TABS = {
    "active": "No one holds a running seat",
    "expired": "No one's licence has expired",
    "unlicensed": "Everyone has held a licence",
}


def empty_tab_message(tab: str, q: str) -> str:
    """What a tab with no one on it says."""
    return _EMPTY_TABS[tab] + (f" among users matching “{q}”." if q else ".")


class TabRow(TypedDict):
    """A user on the Active, Expired Licenses or Unlicensed tab."""

    id: int
    name: str
    email: str
    role: str
    licence_ends_at: datetime | None


async def _tab_page(
    company_id: int, tab: str, q: str, page: int, now: datetime, total: int | None = None
) -> Page[TabRow]:
    where = _people(company_id) & _tab_clause(tab, now) & _search(q)
    select = (
        User.select(User.id, User.name, User.email, User.role, User.licence_ends_at)
        .where(where)
        .order_by(User.name)
        .order_by(User.id)
    )
    return await paginate(select, total if total is not None else User.count().where(where), page)


def _search(q: str) -> Combinable:
    q = q.strip()
    if not q:
        return User.id.is_not_null()
    return db.contains("portal_user.name", q) | db.contains("portal_user.email", q)


async def batches(actor: Actor, company_id: int, now: datetime) -> list[BatchRow]:
    company = await get_company(actor, company_id)
    return await _batches(company["id"], now)


class BatchRow(TypedDict):
    """A licence batch of one company as the Licenses section shows it: _BATCHES_SQL's
    columns, then what _batches works out against the clock."""

    id: int
    seats: int
    allocated: int
    starts_at: datetime
    ends_at: datetime
    order_id: int
    po_number: str | None
    product_name: str
    is_trial: bool
    free: int
    running: bool
    status: str  # a licence status while running, else "ended"


# Written out, as on every Licenses page (see access._ACTOR_SQL).
_BATCHES_SQL = (
    "SELECT licence_batch.id, licence_batch.seats, licence_batch.allocated, licence_batch.starts_at, "
    "licence_batch.ends_at, licence_order.id AS order_id, licence_order.po_number, "
    "product.name AS product_name, product.is_trial "
    "FROM licence_batch "
    'JOIN licence_order ON licence_order.id = licence_batch."order" '
    "JOIN product ON product.id = licence_batch.product "
    "WHERE licence_batch.company = {}"
)


async def _batches(company_id: int, now: datetime) -> list[BatchRow]:
    """The company's batches, running first (ending soonest first), then the ended."""
    rows: list[BatchRow] = await LicenceBatch.raw(_BATCHES_SQL, company_id)
    for row in rows:
        row["free"] = row["seats"] - row["allocated"]
        row["running"] = row["starts_at"] <= now < row["ends_at"]
        row["status"] = licence_status(row["ends_at"], now) if row["running"] else "ended"
    return sorted(
        rows,
        key=lambda r: (not r["running"], r["ends_at"] if r["running"] else -r["ends_at"].timestamp(), r["id"]),
    )


def seats_to_take(batches: list[BatchRow]) -> list[BatchRow]:
    """The batches "Take seats from" offers: running, with a free seat, ending soonest first."""
    return [b for b in batches if b["running"] and b["free"] > 0]


def longest_running(batches: list[BatchRow]) -> int | None:
    """Manual allocation's default: the batch that runs longest gives the latest end date."""
    return max(batches, key=lambda b: (b["ends_at"], b["id"]))["id"] if batches else None


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
            message = "No running licence batch has a free seat. Request Licenses; allocate once they are assigned."
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

    company: dict
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
    runs past the batch's end gets none."""
    company = await get_company(actor, company_id)
    async with db.write_transaction():
        await db.for_update(Company.select(Company.id).where(Company.id == company["id"]))
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


async def _pick_batch(company_id: int, batch_id: int | None, now: datetime) -> dict:
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


async def _insert_allocations(eligible: Combinable, batch: dict, take: int, actor: Actor, now: datetime) -> None:
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


async def allocate_new_learner(actor: Actor, company_id: int, user_id: int, now: datetime) -> bool:
    """A new learner gets a free seat, if the company has one; no error if not.
    (Expired learners are never renewed by themselves: they may have left.)"""
    try:
        result = await allocate(actor, company_id, Selection(user_ids=(user_id,)), now)
    except NotEnoughSeats:
        return False
    return result.renewed == 1


async def deactivate_user(actor: Actor, user_id: int, now: datetime) -> int:
    """A learner who left: deactivated, and their running seat freed for someone
    else, for the batch's remaining time. Returns the seats freed."""
    user = await get_user(actor, user_id)
    if user["id"] == actor.user_id:
        raise ValidationFailed({"user": "You cannot deactivate yourself."})
    async with db.write_transaction():
        await db.for_update(Company.select(Company.id).where(Company.id == user["company"]))
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


async def history(actor: Actor, user_id: int) -> tuple[dict, list[dict]]:
    """A user's seats, newest first: which batch, when, by whom, until when."""
    user = await get_user(actor, user_id)
    seats = (
        await Allocation.select(
            Allocation.id,
            Allocation.allocated_at,
            Allocation.starts_at,
            Allocation.ends_at,
            Allocation.released_at,
            Allocation.batch.seats.as_alias("batch_seats"),
            Allocation.batch.starts_at.as_alias("batch_starts_at"),
            Allocation.batch.ends_at.as_alias("batch_ends_at"),
            Allocation.batch._.product._.name.as_alias("product_name"),
            Allocation.allocated_by.name.as_alias("allocated_by_name"),
        )
        .where(Allocation.user == user["id"])
        .order_by(Allocation.allocated_at, ascending=False)
    )
    return user, seats
