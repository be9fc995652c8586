"""Co-terming: seats added during a term may "End with the current term" instead
of running "12 months from now" (the guides' default), so a company's batches
renew on one date.

The company's current term is its running batch (not a trial) that ends last:
seats co-termed with it end then, whichever batch they were bought beside. The
price, where the seller bills in the portal, is the seller's "Additional standard
user" for a year, pro rata for the days to that end, as a subscription's added
users are priced (billing.money.prorate_to)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal.domain.billing import money
from portal.domain.billing.catalogue import STANDARD_USER, yearly_cents
from portal.tables import Company, LicenceBatch

END_WITH_TERM = "current"  # "End with the current term"
TWELVE_MONTHS = "year"  # "12 months from now"
CHOICES = {END_WITH_TERM: "End with the current term", TWELVE_MONTHS: "12 months from now"}


async def current_term_end(company_id: int, now: datetime) -> datetime | None:
    """When the company's current term ends: its running batch, not a trial,
    that ends last; None while it holds none."""
    last = (
        await LicenceBatch.select(LicenceBatch.ends_at)
        .where(
            (LicenceBatch.company == company_id)
            & (LicenceBatch.ends_at > now)
            & (LicenceBatch.starts_at <= now)
            & (LicenceBatch.product.is_trial == False)  # noqa: E712
        )
        .order_by(LicenceBatch.ends_at, ascending=False)
        .first()
    )
    return last["ends_at"] if last else None


@dataclass(frozen=True)
class SeatPrice:
    """The seller's yearly price of one standard seat, in its currency."""

    yearly_cents: int
    currency: str


async def seat_price(company_id: int) -> SeatPrice | None:
    """The price of a seat where the customer's seller bills in the portal (it has
    billing settings and sells "Additional standard user"); None otherwise. Read
    only: showing a price never writes a seller's defaults."""
    rows = await Company.raw(
        "SELECT item.price_cents, item.period, profile.currency FROM company "
        "JOIN billing_profile AS profile ON profile.company = company.parent "
        "JOIN catalogue_item AS item ON item.partner = company.parent AND item.code = {} AND item.active "
        "WHERE company.id = {} AND company.kind = 'customer'",
        STANDARD_USER,
        company_id,
    )
    if not rows:
        return None
    return SeatPrice(yearly_cents(rows[0]), rows[0]["currency"])


@dataclass(frozen=True)
class Offer:
    """The two ends a request made at `now` may choose, with their days and, where
    a price applies, what `seats` seats cost for each."""

    now: datetime
    seats: int
    term_ends_at: datetime  # "End with the current term"
    year_ends_at: datetime  # "12 months from now"
    price: SeatPrice | None

    @property
    def term_days(self) -> int:
        return money.days_left(self.term_ends_at, self.now)

    @property
    def year_days(self) -> int:
        return money.days_in_term(self.now, self.year_ends_at)

    @property
    def term_cents(self) -> int | None:
        if self.price is None:
            return None
        return money.prorate_to(self.seats * self.price.yearly_cents, self.now, self.term_ends_at)

    @property
    def year_cents(self) -> int | None:
        return None if self.price is None else self.seats * self.price.yearly_cents

    def said(self, choice: str) -> str:
        """One choice as the form and the confirmations say it."""
        if choice == END_WITH_TERM:
            end, days, cents = self.term_ends_at, self.term_days, self.term_cents
        else:
            end, days, cents = self.year_ends_at, self.year_days, self.year_cents
        text = f"{CHOICES[choice]}: ends {end:%d %b %Y}, {days:,} day{'' if days == 1 else 's'}"
        if cents is not None and self.price is not None:
            seats = f"{self.seats:,} seat{'' if self.seats == 1 else 's'}"
            text += f", {money.format_money(cents, self.price.currency)} for {seats}"
            if choice == END_WITH_TERM:
                text += " (pro rata)"
        return text


async def offer(company_id: int, seats: int, now: datetime, ends_at: datetime | None = None) -> Offer | None:
    """What Request Licenses (and Assign, for a co-termed order: `ends_at`, the end
    chosen) offers for `seats` seats: None while the company has no current term."""
    term_ends_at = ends_at or await current_term_end(company_id, now)
    if term_ends_at is None or term_ends_at <= now:
        return None
    return Offer(now, max(seats, 1), term_ends_at, money.term_end(now), await seat_price(company_id))
