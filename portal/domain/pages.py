"""Pagination of list queries: one COUNT and one LIMIT/OFFSET page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PER_PAGE = 25


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
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
    return max(1, number or 1)


async def paginate(select, count, number: int, per_page: int = PER_PAGE) -> Page:
    """`select` is a Piccolo select, or for hand-written SQL a function of
    (limit, offset) that fetches those rows; `count` gives the number of rows
    matching (a Piccolo count, a coroutine), or is that number, not asked again."""
    number = clamp_page(number)
    total = count if isinstance(count, int) else await count
    offset = (number - 1) * per_page
    items = await (select(per_page, offset) if callable(select) else select.limit(per_page).offset(offset))
    return Page(items=items, total=total, number=number, per_page=per_page)
