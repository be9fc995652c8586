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
from typing import Any

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


def period_of(column: str, bounds: list[datetime]) -> tuple[str, list[datetime]]:
    """SQL for the index of the period (week, month) of licence_batch.`column` among
    the periods between `bounds` (a row is known to lie within them): a CASE that
    halves the periods at each step, so a row is placed after ~5 comparisons
    instead of up to 26 (half the statement's time was the flat CASE). Bound
    parameters and comparisons only: both engines read it the same way."""

    def node(first: int, last: int) -> tuple[str, list[datetime]]:
        if first == last:
            return str(first), []
        middle = (first + last + 1) // 2  # weeks [first, middle) end before bounds[middle]
        low, low_args = node(first, middle - 1)
        high, high_args = node(middle, last)
        return f"CASE WHEN licence_batch.{column} < {{}} THEN {low} ELSE {high} END", [
            bounds[middle],
            *low_args,
            *high_args,
        ]

    return node(0, len(bounds) - 2)


def _weekly_sql(actor: Actor, column: str, bounds: list[datetime], tag: str) -> tuple[str, list[Any]]:
    week, week_args = period_of(column, bounds)
    sql = (
        f"SELECT '{tag}' AS chart, {week} AS week, COUNT(*) AS batches, SUM(licence_batch.seats) AS seats, "
        "SUM(licence_batch.allocated) AS held "
        "FROM licence_batch JOIN company ON company.id = licence_batch.company "
        f"WHERE {{}} AND licence_batch.{column} >= {{}} AND licence_batch.{column} < {{}} "
        "GROUP BY 2"
    )
    return sql, [*week_args, under_wing(actor).querystring, bounds[0], bounds[-1]]


def _weeks(rows: list[dict[str, Any]], bounds: list[datetime]) -> list[Week]:
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


async def _weekly(actor: Actor, column: str, bounds: list[datetime]) -> list[Week]:
    sql, args = _weekly_sql(actor, column, bounds, column)
    return _weeks(await LicenceBatch.raw(sql, *args), bounds)


def behind_bounds(now: datetime, weeks: int = BEHIND_WEEKS) -> list[datetime]:
    """Whole days, the last week ending with today."""
    tomorrow = _today(now) + timedelta(days=1)
    return [tomorrow - WEEK * k for k in range(weeks, -1, -1)]


async def both_charts(actor: Actor, now: datetime) -> tuple[list[Week], list[Week]]:
    """ending_per_week and assigned_per_week from one scan of the wing's batches:
    each batch gets its week in either chart (NULL outside it), grouped by the
    pair, then summed per chart here (at most 27 × 9 groups)."""
    require_partner_manager(actor)
    ahead, behind = ahead_bounds(now), behind_bounds(now)
    ending, ending_args = period_of("ends_at", ahead)
    started, started_args = period_of("starts_at", behind)
    in_ahead = "licence_batch.ends_at >= {} AND licence_batch.ends_at < {}"
    in_behind = "licence_batch.starts_at >= {} AND licence_batch.starts_at < {}"
    sql = (
        f"SELECT CASE WHEN {in_ahead} THEN {ending} END AS ending, "
        f"CASE WHEN {in_behind} THEN {started} END AS assigned, "
        "COUNT(*) AS batches, SUM(licence_batch.seats) AS seats, SUM(licence_batch.allocated) AS held "
        "FROM licence_batch JOIN company ON company.id = licence_batch.company "
        f"WHERE {{}} AND (({in_ahead}) OR ({in_behind})) GROUP BY 1, 2"
    )
    rows = await LicenceBatch.raw(
        sql,
        ahead[0],
        ahead[-1],
        *ending_args,
        behind[0],
        behind[-1],
        *started_args,
        under_wing(actor).querystring,
        ahead[0],
        ahead[-1],
        behind[0],
        behind[-1],
    )
    return _summed(rows, "ending", ahead), _summed(rows, "assigned", behind)


def _summed(rows: list[dict[str, Any]], chart: str, bounds: list[datetime]) -> list[Week]:
    totals: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row[chart] is None:
            continue
        week = totals.setdefault(int(row[chart]), {"week": int(row[chart]), "batches": 0, "seats": 0, "held": 0})
        for name in ("batches", "seats", "held"):
            week[name] += int(row[name] or 0)
    return _weeks(list(totals.values()), bounds)


async def ending_per_week(actor: Actor, now: datetime, weeks: int = AHEAD_WEEKS) -> list[Week]:
    """Seats of the wing's batches that end in each of the coming weeks."""
    require_partner_manager(actor)
    return await _weekly(actor, "ends_at", ahead_bounds(now, weeks))


async def assigned_per_week(actor: Actor, now: datetime, weeks: int = BEHIND_WEEKS) -> list[Week]:
    """Seats assigned (batches started) under the wing in each of the last weeks."""
    require_partner_manager(actor)
    return await _weekly(actor, "starts_at", behind_bounds(now, weeks))
