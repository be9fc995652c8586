"""Pagination of list queries: one COUNT and one LIMIT/OFFSET page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from piccolo.query import Count, Select

PER_PAGE = 25
# A page number beyond any list, yet small enough that its OFFSET fits every
# engine's integer (the web refuses larger ones; this holds for any caller).
MAX_PAGE = 2_147_483_647


Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    total: int
    number: int
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def clamp_page(number: int | None) -> int:
    return min(max(1, number or 1), MAX_PAGE)


async def paginate(select: Select[Any], count: int | Count, number: int, per_page: int = PER_PAGE) -> Page[Any]:
    """`select` and `count` are Piccolo queries with the same WHERE clause; a
    count already known (an int) is not asked again."""
    number = clamp_page(number)
    total = count if isinstance(count, int) else await count
    offset = (number - 1) * per_page
    # An empty list, or a page past its end, has no rows to look for: on a big
    # company an empty tab would otherwise walk all its users by name to find none.
    items = await select.limit(per_page).offset(offset) if offset < total else []
    return Page(items=items, total=total, number=number, per_page=per_page)
