"""The Licenses section's tabs (Active, Expired Licenses, Unlicensed): who is
on each, their counts from the tally, and what Request Licenses weighs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable

from portal import db
from portal.domain.access import Actor, get_company
from portal.domain.errors import ValidationFailed
from portal.domain.keyset import Keyset, KeysetPage
from portal.domain.licences.batches import _batches, longest_running, seats_to_take
from portal.tables import LicenceBatch, LicenceTally, User

TABS = ("active", "expired", "unlicensed")


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


def seats_unused(free: int, waiting: int) -> bool:
    """Seats paid for and not used: a running batch has free seats while users
    (learners or managers, expired or never licensed) wait for one."""
    return free > 0 and waiting > 0


def allocate_tab(expired: int) -> str:
    """The tab whose Select All "Allocate now" opens: Expired Licenses while
    anyone's licence has expired, else Unlicensed."""
    return "expired" if expired else "unlicensed"


@dataclass(frozen=True)
class SeatsAndWaiting:
    free: int  # free seats of running batches only: an ended batch's are of no use
    expired: int
    unlicensed: int
    seats: int = 0  # every seat of the running batches, given or free

    @property
    def waiting(self) -> int:
        return self.expired + self.unlicensed

    @property
    def unused(self) -> bool:
        return seats_unused(self.free, self.waiting)

    @property
    def covered(self) -> bool:
        """Free seats enough for everyone waiting: buying more adds nothing yet."""
        return self.free > 0 and self.free >= self.waiting

    @property
    def tab(self) -> str:
        return allocate_tab(self.expired)


async def seats_and_waiting(company_id: int, now: datetime) -> SeatsAndWaiting:
    """What Request Licenses weighs: the seats the company can still give, and who needs one."""
    counts = await _counts(company_id, now)
    row = (
        await LicenceBatch.raw(
            "SELECT SUM(seats - allocated) AS free, SUM(seats) AS seats FROM licence_batch "
            "WHERE company = {} AND starts_at <= {} AND ends_at > {}",
            company_id,
            now,
            now,
        )
    )[0]
    return SeatsAndWaiting(int(row["free"] or 0), counts["expired"], counts["unlicensed"], int(row["seats"] or 0))


async def company_seats(actor: Actor, company_id: int, now: datetime) -> SeatsAndWaiting:
    """seats_and_waiting for a company the actor may see (another tenant's: NotFound)."""
    company = await get_company(actor, company_id)
    return await seats_and_waiting(company["id"], now)


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


async def licence_view(
    actor: Actor, company_id: int, tab: str, q: str, cursor: str | None, now: datetime, secret: bytes
) -> dict[str, Any]:
    """Everything the Licenses section shows, with one authorization check: the
    company, its batches, the tabs' counts and one page of the chosen tab, from
    `cursor` (signed with `secret`; absent or not this tab's: the first page)."""
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
        view["listing"] = await _tab_page(company["id"], tab, q, cursor, now, secret, total=None if q else counts[tab])
        view["empty"] = empty_tab_message(tab, q)
    return view


_EMPTY_TABS = {
    "active": "No one holds a running seat",
    "expired": "No one's license has expired",
    "unlicensed": "Everyone has held a license",
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


def tab_keyset(company_id: int, tab: str, secret: bytes) -> Keyset:
    """A tab's order, A→Z by name then id; its cursors are good on this company's tab only."""
    return Keyset(User.name, User.id, secret, scope=f"tab:{company_id}:{tab}", ascending=True)


async def _tab_page(
    company_id: int, tab: str, q: str, cursor: str | None, now: datetime, secret: bytes, total: int | None = None
) -> KeysetPage[TabRow]:
    where = _people(company_id) & _tab_clause(tab, now) & _search(q)
    walk = tab_keyset(company_id, tab, secret)
    if total is None:
        total = await User.count().where(where)
    return await walk.page(
        lambda: User.select(User.id, User.name, User.email, User.role, User.licence_ends_at).where(where),
        total,
        walk.decode(cursor),
    )


def _search(q: str) -> Combinable:
    q = q.strip()
    if not q:
        return User.id.is_not_null()
    return db.contains("portal_user.name", q) | db.contains("portal_user.email", q)
