"""The renewal forecast: seats of the wing's batches ending per week for the
next 26 weeks, and seats assigned per week over the last 8 (renewals and new
orders alike: an assignment is how a renewal is made).

Each is one grouped statement: the week of a batch is a CASE over the weeks'
bounds (bound parameters, compared with an indexed column), which both engines
read the same way, instead of date arithmetic that each spells differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.tables import LicenceBatch

WEEK = timedelta(days=7)
AHEAD_WEEKS = 26
BEHIND_WEEKS = 8


@dataclass(frozen=True)
class Week:
    start: datetime  # inclusive
    end: datetime  # exclusive
    batches: int
    seats: int
    held: int  # seats allocated to users

    @property
    def empty(self) -> bool:
        return self.batches == 0


def _today(now: datetime) -> datetime:
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


def ahead_bounds(now: datetime, weeks: int = AHEAD_WEEKS) -> list[datetime]:
    """weeks + 1 bounds, each 7 days from the start of today (whole days, so a
    bar and the list of batches behind it, asked by dates, agree)."""
    today = _today(now)
    return [today + WEEK * k for k in range(weeks + 1)]


async def _weekly(actor: Actor, column: str, bounds: list[datetime]) -> list[Week]:
    cases = " ".join(f"WHEN licence_batch.{column} < {{}} THEN {k}" for k in range(len(bounds) - 1))
    sql = (
        f"SELECT CASE {cases} END AS week, COUNT(*) AS batches, SUM(licence_batch.seats) AS seats, "
        "SUM(licence_batch.allocated) AS held "
        "FROM licence_batch JOIN company ON company.id = licence_batch.company "
        f"WHERE {{}} AND licence_batch.{column} >= {{}} AND licence_batch.{column} < {{}} "
        "GROUP BY 1"
    )
    rows = await LicenceBatch.raw(sql, *bounds[1:], under_wing(actor).querystring, bounds[0], bounds[-1])
    by_week = {int(row["week"]): row for row in rows}
    weeks = []
    for k in range(len(bounds) - 1):
        row = by_week.get(k, {})
        weeks.append(
            Week(
                start=bounds[k],
                end=bounds[k + 1],
                batches=int(row.get("batches") or 0),
                seats=int(row.get("seats") or 0),
                held=int(row.get("held") or 0),
            )
        )
    return weeks


async def ending_per_week(actor: Actor, now: datetime, weeks: int = AHEAD_WEEKS) -> list[Week]:
    """Seats of the wing's batches that end in each of the coming weeks."""
    require_partner_manager(actor)
    return await _weekly(actor, "ends_at", ahead_bounds(now, weeks))


async def assigned_per_week(actor: Actor, now: datetime, weeks: int = BEHIND_WEEKS) -> list[Week]:
    """Seats assigned (batches started) under the wing in each of the last weeks."""
    require_partner_manager(actor)
    # Whole days, the last week ending with today.
    tomorrow = _today(now) + timedelta(days=1)
    bounds = [tomorrow - WEEK * k for k in range(weeks, -1, -1)]
    return await _weekly(actor, "starts_at", bounds)
