"""The renewal pipeline in money: the wing's paid batches by the month (or week)
they end, each as renewed (an order renewing it was assigned), requested (one
waits for Assign), lapsed (it ended unrenewed) or still open; what ends in the
next 30, 60 and 90 days; and each customer's renewal rate over the last 12 months.

A seat is valued at its seller's yearly price of a standard user (the catalogue's
"Additional standard user", a monthly price counted 12 times), in the seller's
currency: licence batches carry no price of their own, and that is the price the
seller asks for one more person for a year. Free trials are worth nothing and are
left out. A wing whose sellers bill in several currencies gets one sum per currency.

Each figure is one grouped statement per seller and state; the money is counted
here from those few groups (sellers × states × periods), never per batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, cast

from dateutil.relativedelta import relativedelta

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.billing.catalogue import DEFAULT_ITEMS, STANDARD_USER, yearly_cents
from portal.domain.billing.money import format_money
from portal.domain.dashboard.figures import db_datetime
from portal.domain.dashboard.kept import Kept
from portal.domain.forecast import period_of
from portal.domain.pages import PER_PAGE, Page, clamp_page
from portal.tables import LicenceBatch

PERIODS = {"month": (6, 12), "week": (8, 26)}  # periods shown behind and ahead of today
HORIZONS = (30, 60, 90)  # days
RATE_WINDOW = relativedelta(months=12)
STATES = ("renewed", "requested", "lapsed", "open")
DEFAULT_CURRENCY = "USD"
_DEFAULT_SEAT = next(item for item in DEFAULT_ITEMS if item.code == STANDARD_USER)

# A batch's state; the renewal orders are found by the index on renews_batch.
_STATE_SQL = """CASE
  WHEN EXISTS (SELECT 1 FROM licence_order AS r WHERE r.renews_batch = licence_batch.id AND r.status = 'assigned')
    THEN 'renewed'
  WHEN EXISTS (SELECT 1 FROM licence_order AS r WHERE r.renews_batch = licence_batch.id AND r.status = 'requested')
    THEN 'requested'
  WHEN licence_batch.ends_at <= {} THEN 'lapsed'
  ELSE 'open' END"""
_PAID_UNDER_WING = """FROM licence_batch
JOIN company ON company.id = licence_batch.company
JOIN product ON product.id = licence_batch.product
WHERE {} AND NOT product.is_trial AND licence_batch.ends_at >= {} AND licence_batch.ends_at < {}"""


@dataclass(frozen=True)
class Money:
    """Cents per currency; most wings have one."""

    cents: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, sums: dict[str, int]) -> Money:
        return cls(tuple(sorted((currency, cents) for currency, cents in sums.items() if cents)))

    def __add__(self, other: Money) -> Money:
        sums = dict(self.cents)
        for currency, cents in other.cents:
            sums[currency] = sums.get(currency, 0) + cents
        return Money.of(sums)

    def __str__(self) -> str:
        if not self.cents:
            return "–"
        return " + ".join(format_money(cents, currency) for currency, cents in self.cents)


@dataclass(frozen=True)
class Figures:
    batches: int = 0
    seats: int = 0
    value: Money = field(default_factory=Money)

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.batches + other.batches, self.seats + other.seats, self.value + other.value)


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive
    end: datetime  # exclusive
    past: bool  # ended before today
    # currency → state → figures: the CSV writes a row per currency
    by_currency: dict[str, dict[str, Figures]]

    def of(self, state: str, currency: str | None = None) -> Figures:
        return sum(
            (states.get(state, Figures()) for c, states in self.by_currency.items() if currency in (None, c)),
            Figures(),
        )

    def ending(self, currency: str | None = None) -> Figures:
        return sum((self.of(state, currency) for state in STATES), Figures())


@dataclass(frozen=True)
class Horizon:
    days: int
    ending: Figures
    renewed: Figures  # renewed or requested already: no action needed but Assign

    @property
    def open(self) -> Figures:
        return Figures(
            self.ending.batches - self.renewed.batches,
            self.ending.seats - self.renewed.seats,
            self.ending.value + Money(tuple((c, -v) for c, v in self.renewed.value.cents)),
        )


@dataclass(frozen=True)
class SeatPrice:
    yearly_cents: int
    currency: str

    def value(self, seats: int) -> Money:
        return Money.of({self.currency: seats * self.yearly_cents})


def bounds_of(period: str, now: datetime) -> list[datetime]:
    """Whole days: months from the 1st, weeks from today's weekday; `behind`
    periods before the current one, `ahead` from it."""
    behind, ahead = PERIODS[period]
    today = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    if period == "month":
        first = today.replace(day=1)
        return [first + relativedelta(months=k) for k in range(-behind, ahead + 1)]
    return [today + timedelta(weeks=k) for k in range(-behind, ahead + 1)]


async def seat_prices(sellers: Iterable[int]) -> dict[int, SeatPrice]:
    """Each seller's yearly price of a standard user, and its currency; the
    catalogue's default for a seller that never opened its catalogue."""
    ids = sorted({int(s) for s in sellers if s is not None})
    if not ids:
        return {}
    listed = ", ".join(str(i) for i in ids)  # our own integer ids
    rows = await LicenceBatch.raw(
        "SELECT company.id AS seller, item.price_cents, item.period, profile.currency FROM company "
        f"LEFT JOIN catalogue_item AS item ON item.partner = company.id AND item.code = '{STANDARD_USER}' "
        "LEFT JOIN billing_profile AS profile ON profile.company = company.id "
        f"WHERE company.id IN ({listed})"
    )
    default = yearly_cents({"price_cents": _DEFAULT_SEAT.price_cents, "period": _DEFAULT_SEAT.period})
    return {
        row["seller"]: SeatPrice(
            yearly_cents(row) if row["price_cents"] is not None else default,
            row["currency"] or DEFAULT_CURRENCY,
        )
        for row in rows
    }


async def _grouped(actor: Actor, bounds: list[datetime], now: datetime) -> list[dict[str, Any]]:
    """(period index, seller, state) → batches, seats and the first end, for the
    paid batches ending within `bounds`."""
    period, period_args = period_of("ends_at", bounds)
    sql = (
        f"SELECT {period} AS period, company.parent AS seller, {_STATE_SQL} AS state, COUNT(*) AS batches, "
        f"SUM(licence_batch.seats) AS seats, MIN(licence_batch.ends_at) AS first_end {_PAID_UNDER_WING} "
        "GROUP BY 1, 2, 3"
    )
    return cast(
        "list[dict[str, Any]]",
        await LicenceBatch.raw(sql, *period_args, now, under_wing(actor).querystring, bounds[0], bounds[-1]),
    )


def _figures(rows: Iterable[dict[str, Any]], prices: dict[int, SeatPrice]) -> Iterator[tuple[int, str, str, Figures]]:
    fallback = SeatPrice(0, DEFAULT_CURRENCY)
    for row in rows:
        seats = int(row["seats"] or 0)
        price = prices.get(row["seller"], fallback)
        yield int(row["period"]), price.currency, row["state"], Figures(int(row["batches"]), seats, price.value(seats))


async def pipeline(actor: Actor, period: str, now: datetime) -> list[Period]:
    """The wing's paid batches by the period they end in, by state, in seats and money."""
    require_partner_manager(actor)
    bounds = bounds_of(period if period in PERIODS else "month", now)
    rows = await _grouped(actor, bounds, now)
    prices = await seat_prices(row["seller"] for row in rows)
    cells: dict[int, dict[str, dict[str, Figures]]] = {}
    for k, currency, state, figures in _figures(rows, prices):
        by_state = cells.setdefault(k, {}).setdefault(currency, {})
        by_state[state] = by_state.get(state, Figures()) + figures
    return [
        Period(start=bounds[k], end=bounds[k + 1], past=bounds[k + 1] <= now, by_currency=cells.get(k, {}))
        for k in range(len(bounds) - 1)
    ]


async def horizons(actor: Actor, now: datetime, kept: Kept | None = None, version: str = "") -> list[Horizon]:
    """What ends in the next 30, 60 and 90 days, and how much of it is renewed
    (or its renewal requested) already.

    With `kept` and the wing's `version` (figures.Listing), counted again only when
    the version changes or the clock moves a batch's end across now or a horizon:
    counted with one period more (90 to 180 days), each period's first end says
    when (the 90 days at most, for a batch beyond 180 days to come within 90)."""
    require_partner_manager(actor)
    key = ("horizons", actor.company_path, version)
    counted = kept.get(key, now) if kept is not None and version else None
    if counted is not None:
        return cast("list[Horizon]", counted)
    offsets = [timedelta(days=days) for days in (0, *HORIZONS, 2 * HORIZONS[-1])]
    rows = await _grouped(actor, [now + offset for offset in offsets], now)
    until = min(
        (db_datetime(row["first_end"]) - offsets[int(row["period"])] for row in rows),
        default=now + offsets[len(HORIZONS)],
    )
    rows = [row for row in rows if int(row["period"]) < len(HORIZONS)]
    prices = await seat_prices(row["seller"] for row in rows)
    ending = [Figures() for _ in HORIZONS]
    renewed = [Figures() for _ in HORIZONS]
    for k, _currency, state, figures in _figures(rows, prices):
        for later in range(k, len(HORIZONS)):  # within 30 days is within 60 and 90 too
            ending[later] += figures
            if state in ("renewed", "requested"):
                renewed[later] += figures
    counted = [Horizon(days, ending[k], renewed[k]) for k, days in enumerate(HORIZONS)]
    if kept is not None and version:
        kept.put(key, counted, min(until, now + offsets[len(HORIZONS)]))
    return counted


@dataclass(frozen=True)
class CustomerRate:
    company_id: int
    name: str
    ended: int  # seats of its paid batches that ended in the last 12 months
    renewed: int  # of those, seats renewed
    value_lost: Money  # the value of the seats that were not

    @property
    def rate(self) -> float:
        return self.renewed / self.ended if self.ended else 1.0


async def renewal_rates(actor: Actor, now: datetime, page: int = 1) -> Page[CustomerRate]:
    """Each customer's renewal rate over the last 12 months, the lowest first
    (who to call), 25 a page."""
    require_partner_manager(actor)
    number = clamp_page(page)
    renewed = f"CASE WHEN {_STATE_SQL} = 'renewed' THEN licence_batch.seats ELSE 0 END"
    sql = (
        "SELECT company.id, company.name, company.parent AS seller, SUM(licence_batch.seats) AS ended, "
        f"SUM({renewed}) AS renewed, COUNT(*) OVER () AS total {_PAID_UNDER_WING} "
        "GROUP BY company.id, company.name, company.parent "
        "ORDER BY SUM(" + renewed + ") * 1.0 / SUM(licence_batch.seats), company.name, company.id "
        f"LIMIT {PER_PAGE} OFFSET {(number - 1) * PER_PAGE}"
    )
    rows = await LicenceBatch.raw(sql, now, under_wing(actor).querystring, now - RATE_WINDOW, now, now)
    prices = await seat_prices(row["seller"] for row in rows)
    fallback = SeatPrice(0, DEFAULT_CURRENCY)
    items = [
        CustomerRate(
            row["id"],
            row["name"],
            int(row["ended"]),
            int(row["renewed"]),
            prices.get(row["seller"], fallback).value(int(row["ended"]) - int(row["renewed"])),
        )
        for row in rows
    ]
    total = int(rows[0]["total"]) if rows else 0
    return Page(items=items, total=total, number=number)
