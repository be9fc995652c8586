"""A renewal: a new batch that continues a term, for the people who hold it.

One rule whichever path makes the new batch ("Renew same quantity", an order
assigned from Requested Orders that renews a batch, a subscription's next term,
an automatic renewal): the new term starts where the renewed one ends (no day
paid twice, no gap), and the seat holders of the renewed term get a seat of the
new batch from its start, so their licence runs on. An order that renews
nothing starts its term when it is assigned (orders.decisions.assign_order).

A holder keeps one licence end (`portal_user.licence_ends_at`, which the
licence_tally triggers follow), so a carried user is counted once, at the new end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal import db
from portal.domain import catalogue
from portal.domain.billing import money
from portal.tables import Company

# The holders of a term, given its batches `ob` (every batch of the company and
# product ending at that instant: a subscription's term and the seats added
# during it end together): users with a seat of them not released, active (a
# leaver is not renewed).
_HOLDERS_OF_OB = (
    " JOIN allocation AS a ON a.batch = ob.id AND a.released_at IS NULL"
    ' JOIN portal_user AS u ON u.id = a."user" AND u.active'
)


@dataclass(frozen=True)
class NewTerm:
    """When a batch about to be made runs, and why: from its assignment for the
    product's term, or from its assignment to the end of the company's current term
    (`cotermed`: "End with the current term", licences.coterm), or, renewing a
    batch, from that batch's end with `moving` of its holders."""

    starts_at: datetime
    ends_at: datetime
    length: str  # "12 months": the product's term, as the guides say it
    renewed: dict[str, Any] | None = None  # the batch renewed (a licence_batch row)
    moving: int = 0
    cotermed: bool = False

    @property
    def days(self) -> int:
        return money.days_in_term(self.starts_at, self.ends_at)

    @property
    def said(self) -> str:
        """What a confirmation says before: which rule applies, the end, who moves."""
        if self.cotermed:
            return f"ends with the current term, on {self.ends_at:%d %b %Y} ({self.days:,} days from now)"
        if self.renewed is None:
            return f"{self.length} from now, ends {self.ends_at:%d %b %Y}"
        users = "1 user moves" if self.moving == 1 else f"{self.moving:,} users move"
        return (
            f"starts when the renewed batch ends, on {self.starts_at:%d %b %Y}, ends {self.ends_at:%d %b %Y}, {users}"
        )

    @property
    def said_done(self) -> str:
        """The same, once done."""
        if self.cotermed:
            return f"ending with the current term, on {self.ends_at:%d %b %Y}"
        if self.renewed is None:
            return f"{self.length} from now, ending {self.ends_at:%d %b %Y}"
        users = "1 user moved" if self.moving == 1 else f"{self.moving:,} users moved"
        return (
            f"starting when the renewed batch ends, on {self.starts_at:%d %b %Y}, ending {self.ends_at:%d %b %Y}; "
            f"{users} to it"
        )


def term_length(product: dict[str, Any]) -> str:
    if product.get("term_months"):
        months = product["term_months"]
        return f"{months} month{'' if months == 1 else 's'}"
    days = product["term_days"]
    return f"{days} day{'' if days == 1 else 's'}"


async def new_term(
    product: dict[str, Any],
    seats: int,
    renewed: dict[str, Any] | None,
    now: datetime,
    cotermed_to: datetime | None = None,
) -> NewTerm:
    """The term of a batch of `seats` seats of `product` assigned at `now`:
    renewing `renewed`, from its end (with the holders carry_over will move);
    otherwise from now, to `cotermed_to` (the current term's end the order chose)
    or for the product's term."""
    if renewed is None and cotermed_to is not None:
        return NewTerm(now, cotermed_to, term_length(product), cotermed=True)
    if renewed is None:
        return NewTerm(now, catalogue.term_end(product, now), term_length(product))
    starts_at = renewed["ends_at"]
    ends_at = catalogue.term_end(product, starts_at)
    moving = await holders_moving(renewed, seats, ends_at)
    return NewTerm(starts_at, ends_at, term_length(product), renewed, moving)


async def holders_moving(renewed: dict[str, Any], seats: int, new_ends_at: datetime) -> int:
    """How many users a renewal of `renewed` with `seats` seats ending at
    `new_ends_at` would carry over, as carry_over will count them."""
    rows = await Company.raw(
        'SELECT COUNT(DISTINCT a."user") AS n FROM licence_batch AS ob'
        + _HOLDERS_OF_OB
        + " WHERE ob.company = {} AND ob.product = {} AND ob.ends_at = {}"
        " AND (u.licence_ends_at IS NULL OR u.licence_ends_at < {})",
        renewed["company"],
        renewed["product"],
        renewed["ends_at"],
        new_ends_at,
    )
    return min(int(rows[0]["n"] or 0), seats)


async def carry_over(batch_ids: Sequence[int], now: datetime) -> dict[int, int]:
    """The seat holders of the term that ends where each new batch starts (every
    batch of its company and product ending at that instant) get a seat of the
    new batch from its start, first allocated first, up to its seats; users
    whose seat already runs to the new end keep theirs.

    Three statements whatever the number of batches and holders, inside the
    caller's transaction (which holds the companies' seat locks). Returns each
    new batch's seats held."""
    if not batch_ids:
        return {}
    ids = ", ".join(str(int(i)) for i in batch_ids)
    await Company.raw(
        'INSERT INTO allocation (batch, "user", allocated_at, allocated_by, starts_at, ends_at, released_at) '
        f"SELECT new_batch, holder, {db.timestamp_param()}, NULL, starts_at, ends_at, NULL FROM ("
        ' SELECT nb.id AS new_batch, nb.starts_at, nb.ends_at, nb.seats, a."user" AS holder,'
        "  ROW_NUMBER() OVER (PARTITION BY nb.id ORDER BY MIN(a.id)) AS n"
        " FROM licence_batch AS nb"
        " JOIN licence_batch AS ob ON ob.company = nb.company AND ob.ends_at = nb.starts_at"
        " AND ob.product = nb.product AND ob.id <> nb.id"
        + _HOLDERS_OF_OB
        # Carried once: a second run finds them at the new end already.
        + f" WHERE nb.id IN ({ids}) AND (u.licence_ends_at IS NULL OR u.licence_ends_at < nb.ends_at)"
        ' GROUP BY nb.id, nb.starts_at, nb.ends_at, nb.seats, a."user"'
        ") AS held WHERE n <= seats",
        now,
    )
    await Company.raw(
        "UPDATE portal_user SET licence_ends_at = nb.ends_at FROM allocation AS a "
        "JOIN licence_batch AS nb ON nb.id = a.batch "
        f'WHERE a."user" = portal_user.id AND a.released_at IS NULL AND nb.id IN ({ids}) '
        "AND (portal_user.licence_ends_at IS NULL OR portal_user.licence_ends_at < nb.ends_at)"
    )
    counted = await Company.raw(
        "UPDATE licence_batch SET allocated = (SELECT COUNT(*) FROM allocation AS a "
        f"WHERE a.batch = licence_batch.id AND a.released_at IS NULL) WHERE id IN ({ids}) RETURNING id, allocated"
    )
    return {row["id"]: row["allocated"] for row in counted}
