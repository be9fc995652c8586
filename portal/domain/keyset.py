"""Keyset pagination: a page is the rows just after (or just before) a row seen,
by a sort key that is unique (a column such as a timestamp or a name, then the
id), newest first or A→Z. Unlike LIMIT/OFFSET (portal/domain/pages.py), page
2,000 costs what page 1 costs: the database walks the index from the cursor
instead of counting past every earlier row.

The cursor a page hands out is opaque (base64 of the key) and signed with a key
the caller holds and the list's scope (its name, and the tenant it belongs to),
so an address that was edited by hand, or a cursor taken from another list, is
not read as a position: a cursor that does not check out is the first page, not
an error. A cursor only positions within the query it is given; the query still
says which rows the actor may see.

A cursor also carries how many rows come before the page it opens, so a page
can say "26–50 of 50,000" without counting up to itself."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, cast

from piccolo.columns import Column, Integer, Timestamptz
from piccolo.custom_types import Combinable
from piccolo.query import Select

PER_PAGE = 25
_SIGNATURE_BYTES = 16
_MAX_TOKEN = 2048  # a key naming 255 characters of UTF-8, in base64, and the signature

Direction = Literal["next", "previous"]
Row = TypeVar("Row")
KeyedRow = TypeVar("KeyedRow", bound=Mapping[str, Any])
# fetch(clause, ascending, limit): the list's rows that also match `clause` (None:
# all of them), ordered by the key ascending or not, at most `limit` of them.
Fetch = Callable[[Combinable | None, bool, int], Awaitable[list[KeyedRow]]]


@dataclass(frozen=True)
class Cursor:
    """A position: the key of a row, which side of it the wanted page is, and how
    many rows of the list come before that page (for "26–50 of …")."""

    key: tuple[Any, Any]
    direction: Direction = "next"
    before: int = 0


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
    before: int = 0  # rows of the list before this page

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    @property
    def first_number(self) -> int:
        """The place of the page's first row in the list, from 1 ("26" of "26–50")."""
        return self.before + 1 if self.items else 0

    @property
    def last_number(self) -> int:
        return self.before + len(self.items)


class Keyset:
    """A list's sort key: `column`, then `tiebreak` (a unique id), newest (largest)
    first, or smallest first with `ascending` (names A→Z). `scope` names the list
    (and its tenant): a cursor signed for one scope is no position in another."""

    def __init__(
        self, column: Column, tiebreak: Column, secret: bytes, *, scope: str = "", ascending: bool = False
    ) -> None:
        self.column = column
        self.tiebreak = tiebreak
        self.ascending = ascending
        self._secret = secret
        self._scope = scope.encode()

    # --- cursors ---------------------------------------------------------------

    def encode(self, row: Mapping[str, Any], direction: Direction, before: int = 0) -> str:
        first = row[self.column._meta.name]
        value = first.isoformat() if isinstance(first, datetime) else first
        body = json.dumps(
            [direction[0], value, row[self.tiebreak._meta.name], max(0, before)],
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        return _b64(body) + "." + _b64(self._sign(body))

    def decode(self, token: str | None) -> Cursor | None:
        """The cursor `token` stands for, or None (absent, edited, or not this list's)."""
        if not token or not isinstance(token, str) or len(token) > _MAX_TOKEN:
            return None
        body_part, _, signature_part = token.partition(".")
        try:
            body, signature = _unb64(body_part), _unb64(signature_part)
            if not hmac.compare_digest(signature, self._sign(body)):
                return None
            direction, value, tiebreak, before = json.loads(body)
            first = self._load(value)
        except (ValueError, TypeError, binascii.Error):
            return None
        if direction not in ("n", "p") or not _is_int(tiebreak) or not _is_int(before) or before < 0:
            return None
        return Cursor((first, tiebreak), "next" if direction == "n" else "previous", before)

    def _load(self, value: Any) -> Any:
        """The key's first value as the column holds it; ValueError if it cannot be."""
        if isinstance(self.column, Timestamptz):
            if not isinstance(value, str):
                raise ValueError("not a timestamp")
            return datetime.fromisoformat(value)
        if isinstance(self.column, Integer):
            if not _is_int(value):
                raise ValueError("not an integer")
            return value
        if not isinstance(value, str):
            raise ValueError("not text")
        return value

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, self._scope + b"\0" + body, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

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
        query: Callable[[], Select[Any]],
        total: int,
        cursor: Cursor | None,
        per_page: int = PER_PAGE,
        total_is_more: bool = False,
    ) -> KeysetPage[Any]:
        """`query()` makes the list's SELECT afresh (with its WHERE, no ORDER BY: a
        Piccolo query changes in place), returning the two key columns by their names;
        `total` is the count of all its rows, shown beside the pager."""

        async def fetch(clause: Combinable | None, ascending: bool, limit: int) -> list[dict[str, Any]]:
            select = query()
            if clause is not None:
                select = select.where(clause)
            return await select.order_by(self.column, self.tiebreak, ascending=ascending).limit(limit)

        return await self.page_from(fetch, total, cursor, per_page, total_is_more)

    async def page_from(
        self,
        fetch: Fetch[KeyedRow],
        total: int,
        cursor: Cursor | None,
        per_page: int = PER_PAGE,
        total_is_more: bool = False,
    ) -> KeysetPage[KeyedRow]:
        """A page of a list read by `fetch` (see Fetch): for a list whose SELECT is
        written out rather than built by Piccolo."""
        backwards = cursor is not None and cursor.direction == "previous"
        clause = self._beyond(cursor.key, backwards) if cursor is not None else None
        # Nothing matches: no need to walk the index to find it.
        rows = await fetch(clause, self.ascending != backwards, per_page + 1) if total else []
        if cursor is not None and not rows and total:
            # A position past the rows left (they were deleted meanwhile): start again.
            return await self.page_from(fetch, total, None, per_page, total_is_more)
        more = len(rows) > per_page
        rows = rows[:per_page]
        if backwards:
            rows.reverse()
        # Beyond the rows fetched there are more on the side we walked to; the side
        # we came from has at least the row the cursor named.
        more_after = more if not backwards else True
        more_before = cursor is not None if not backwards else more
        before = cursor.before if cursor is not None else 0
        if not more_before:
            before = 0  # the first page, whatever the cursor reckoned
        elif not more_after and not total_is_more:
            before = max(0, total - len(rows))  # the last page: rows deleted or added meanwhile
        return KeysetPage(
            items=rows,
            total=total,
            next_cursor=self.encode(rows[-1], "next", before + len(rows)) if rows and more_after else None,
            previous_cursor=self.encode(rows[0], "previous", before - per_page) if rows and more_before else None,
            per_page=per_page,
            total_is_more=total_is_more,
            before=before,
        )

    def _beyond(self, key: tuple[Any, Any], backwards: bool) -> Combinable:
        """The rows after `key` in the list's order (before it, `backwards`)."""
        column, tiebreak = self.column, self.tiebreak
        first, last = key
        # The first, redundant term is what an index on (column, tiebreak) seeks to;
        # the OR alone would be read as a filter over every row before the cursor.
        if self.ascending != backwards:
            return cast("Combinable", (column >= first) & ((column > first) | (tiebreak > last)))
        return cast("Combinable", (column <= first) & ((column < first) | (tiebreak < last)))

    async def walk(self, query: Callable[[], Select[Any]], chunk: int = 2000) -> AsyncIterator[list[dict[str, Any]]]:
        """Every row of `query()` in the list's order, `chunk` rows at a time (a
        download of the whole list)."""

        async def fetch(clause: Combinable | None, ascending: bool, limit: int) -> list[dict[str, Any]]:
            select = query() if clause is None else query().where(clause)
            return await select.order_by(self.column, self.tiebreak, ascending=ascending).limit(limit)

        async for rows in self.walk_from(fetch, chunk):
            yield rows

    async def walk_from(self, fetch: Fetch[KeyedRow], chunk: int = 2000) -> AsyncIterator[list[KeyedRow]]:
        """Every row `fetch` reads (see Fetch), in the list's order, `chunk` rows at
        a time: each chunk starts from the last row of the one before, so the last
        chunk costs what the first does (an OFFSET would walk past every row before)."""
        key: tuple[Any, Any] | None = None
        while True:
            rows = await fetch(None if key is None else self._beyond(key, False), self.ascending, chunk)
            if rows:
                yield rows
            if len(rows) < chunk:
                return
            key = (rows[-1][self.column._meta.name], rows[-1][self.tiebreak._meta.name])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
