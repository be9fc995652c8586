"""Keyset pagination: a page is the rows just after (or just before) a row seen,
by a sort key that is unique (a column such as a timestamp, then the id), newest
first. Unlike LIMIT/OFFSET (portal/domain/pages.py), page 2,000 costs what page 1
costs: the database walks the index from the cursor instead of counting past
every earlier row.

The cursor a page hands out is opaque (base64 of the key) and signed with a key
the caller holds, so an address that was edited by hand is not read as a
position: a cursor that does not check out is the first page, not an error.
A cursor only positions within the query it is given; the query still says
which rows the actor may see."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from piccolo.columns import Column, Timestamptz
from piccolo.custom_types import Combinable
from piccolo.query import Select

PER_PAGE = 25
_SIGNATURE_BYTES = 16

Direction = Literal["next", "previous"]
Row = TypeVar("Row")


@dataclass(frozen=True)
class Cursor:
    """A position: the key of a row, and which side of it the wanted page is."""

    key: tuple[Any, Any]
    direction: Direction = "next"


@dataclass(frozen=True)
class KeysetPage(Generic[Row]):
    items: list[Row]
    # How many rows the list has, counted up to a bound (see count_up_to): with
    # `total_is_more`, there are more than `total`.
    total: int
    # The cursors of the pages on either side; None at either end.
    next_cursor: str | None
    previous_cursor: str | None
    per_page: int = PER_PAGE
    total_is_more: bool = False

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None


class Keyset:
    """A list's sort key: `column` (newest first), then `tiebreak` (a unique id)."""

    def __init__(self, column: Column, tiebreak: Column, secret: bytes) -> None:
        self.column = column
        self.tiebreak = tiebreak
        self._secret = secret

    # --- cursors ---------------------------------------------------------------

    def encode(self, row: dict, direction: Direction) -> str:
        first = row[self.column._meta.name]
        value = first.isoformat() if isinstance(first, datetime) else first
        body = json.dumps([direction[0], value, row[self.tiebreak._meta.name]], separators=(",", ":")).encode()
        return _b64(body) + "." + _b64(self._sign(body))

    def decode(self, token: str | None) -> Cursor | None:
        """The cursor `token` stands for, or None (absent, edited, or not ours)."""
        if not token or len(token) > 200:
            return None
        body_part, _, signature_part = token.partition(".")
        try:
            body, signature = _unb64(body_part), _unb64(signature_part)
            if not hmac.compare_digest(signature, self._sign(body)):
                return None
            direction, value, tiebreak = json.loads(body)
            first = datetime.fromisoformat(value) if isinstance(self.column, Timestamptz) else value
        except (ValueError, TypeError, binascii.Error):
            return None
        if direction not in ("n", "p") or not isinstance(tiebreak, int) or isinstance(tiebreak, bool):
            return None
        return Cursor((first, tiebreak), "next" if direction == "n" else "previous")

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    # --- a page ----------------------------------------------------------------

    async def count_up_to(self, where: Combinable, bound: int) -> tuple[int, bool]:
        """How many rows match `where`, counting no further than `bound`: the rows
        of a long list are many, and every page shows the count. Returns the count
        and whether there are more than it."""
        table = self.tiebreak._meta.table
        first = table.select(self.tiebreak).where(where).limit(bound + 1)
        rows = await table.raw("SELECT COUNT(*) AS n FROM ({}) AS counted", first.querystrings[0])
        found = int(rows[0]["n"])
        return min(found, bound), found > bound

    async def page(
        self,
        query: Callable[[], Select],
        total: int,
        cursor: Cursor | None,
        per_page: int = PER_PAGE,
        total_is_more: bool = False,
    ) -> KeysetPage:
        """`query()` makes the list's SELECT afresh (with its WHERE, no ORDER BY: a
        Piccolo query changes in place), returning the two key columns by their names;
        `total` is the count of all its rows, shown beside the pager."""
        column, tiebreak = self.column, self.tiebreak
        select = query()
        backwards = cursor is not None and cursor.direction == "previous"
        if cursor is not None:
            select = select.where(self._beyond(cursor.key, backwards))
        rows = (
            await select.order_by(column, tiebreak, ascending=backwards).limit(per_page + 1)
            if total
            else []  # nothing matches: no need to walk the index to find it
        )
        if cursor is not None and not rows and total:
            # A position past the rows left (they were deleted meanwhile): start again.
            return await self.page(query, total, None, per_page, total_is_more)
        more = len(rows) > per_page
        rows = rows[:per_page]
        if backwards:
            rows.reverse()
        # Beyond the rows fetched there are more on the side we walked to; the side
        # we came from has at least the row the cursor named.
        more_after = more if not backwards else True
        more_before = cursor is not None if not backwards else more
        return KeysetPage(
            items=rows,
            total=total,
            next_cursor=self.encode(rows[-1], "next") if rows and more_after else None,
            previous_cursor=self.encode(rows[0], "previous") if rows and more_before else None,
            per_page=per_page,
            total_is_more=total_is_more,
        )

    def _beyond(self, key: tuple[Any, Any], backwards: bool) -> Combinable:
        """The rows after `key` in the list's order (before it, `backwards`)."""
        column, tiebreak = self.column, self.tiebreak
        first, last = key
        # The first, redundant term is what an index on (column, tiebreak) seeks to;
        # the OR alone would be read as a filter over every row before the cursor.
        if backwards:
            return (column >= first) & ((column > first) | (tiebreak > last))
        return (column <= first) & ((column < first) | (tiebreak < last))

    async def walk(self, query: Callable[[], Select], chunk: int = 2000) -> AsyncIterator[list[dict]]:
        """Every row of `query()` in the list's order, `chunk` rows at a time (a
        download of the whole list): each chunk starts from the last row of the one
        before, so the last chunk costs what the first does."""
        key: tuple[Any, Any] | None = None
        while True:
            select = query()
            if key is not None:
                select = select.where(self._beyond(key, False))
            rows = await select.order_by(self.column, self.tiebreak, ascending=False).limit(chunk)
            if rows:
                yield rows
            if len(rows) < chunk:
                return
            key = (rows[-1][self.column._meta.name], rows[-1][self.tiebreak._meta.name])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
