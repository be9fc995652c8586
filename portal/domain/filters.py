"""A list's filters, each defined once: its name in the query string, its
label, how a query-string value is read, the widget that edits it and the
WHERE clause it adds. The web layer parses and rebuilds query strings from the
spec, the domain narrows the query with it, and the template renders one
widget per kind from it, so a new filter is one `Filter(...)` line.

Values are read leniently: a malformed or out-of-range value is "absent", not
an error (a bookmarked URL with a stale value still opens the list)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from piccolo.custom_types import Combinable

from portal.domain.numbers import whole_number

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2100, 12, 31)

Widget = Literal["select", "date", "number"]


def as_int(raw: str) -> int | None:
    # Ids and quantities: a minus, like a number past an integer column, is no filter.
    return whole_number(raw)


def as_date(raw: str) -> date | None:
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def one_of(allowed: Iterable[str]) -> Callable[[str], str | None]:
    options = frozenset(allowed)
    return lambda raw: raw if raw in options else None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_end(day: date) -> datetime:
    """The first instant after `day`: `column < day_end(day)` keeps all of it."""
    return day_start(day) + timedelta(days=1)


@dataclass(frozen=True)
class Filter:
    name: str
    label: str
    widget: Widget
    parse: Callable[[str], Any]
    clause: Callable[[Any], Combinable]
    # For a select: the text of its empty option. Its options come from the
    # list's own choices function, keyed by the filter's name.
    anyone: str = "Any"


class FilterSet:
    """The filters of one list, in the order "Add Filter" offers them."""

    def __init__(self, *filters: Filter) -> None:
        self.by_name = {f.name: f for f in filters}

    def __iter__(self) -> Iterator[Filter]:
        return iter(self.by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __getitem__(self, name: str) -> Filter:
        return self.by_name[name]

    def parse(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The filters set in a query string, with their values read; the rest left out."""
        values = {}
        for f in self:
            raw = params.get(f.name)
            value = f.parse(raw) if isinstance(raw, str) and raw.strip() else None
            if value is not None:
                values[f.name] = value
        return values

    def values(self, **values: Any) -> dict[str, Any]:
        """Values given in code (tests, the benchmark): unknown names are a bug."""
        unknown = set(values) - set(self.by_name)
        if unknown:
            raise TypeError(f"no such filter: {', '.join(sorted(unknown))}")
        return {name: value for name, value in values.items() if value is not None}

    def where(self, values: Mapping[str, Any], where: Combinable) -> Combinable:
        for name, value in values.items():
            where &= self[name].clause(value)
        return where

    @staticmethod
    def as_query(values: Mapping[str, Any]) -> dict[str, str]:
        """The values as the query string writes them (dates as YYYY-MM-DD)."""
        return {name: value.isoformat() if isinstance(value, date) else str(value) for name, value in values.items()}
