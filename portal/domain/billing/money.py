"""Money and the arithmetic of terms: whole cents, rounded half-up once.

Amounts are integer cents everywhere (columns `*_cents`); Decimal is used only
where a division happens (pro rata, tax), and the result is rounded to the cent
once, so a line or a total never carries a fraction that another step rounds again."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import cast

from dateutil.relativedelta import relativedelta

TERM_MONTHS = 12
# Symbols shown before the amount; the ISO code always follows, so "$" is never ambiguous.
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def to_cents(amount: Decimal) -> int:
    """An amount in currency units (Decimal("12.345")) as whole cents, half-up."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_money(cents: int, currency: str) -> str:
    """ "$1,234.56 USD"; "-$5.00 USD"; "1,234.56 CHF" for a currency without a symbol here."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{SYMBOLS.get(currency, '')}{units:,}.{rest:02d} {currency}"


def term_end(start: datetime) -> datetime:
    """The same instant 12 calendar months later; 29 February ends on 28 February."""
    return cast("datetime", start + relativedelta(months=TERM_MONTHS))


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


def days_left(term_end: datetime, at: datetime) -> int:
    """Days from `at`'s UTC date (counted) to the term end's UTC date (not counted), but
    at least one while `at` is before the end: the last day is a day of the term, and
    what is added on it is charged for it, never for nothing. 0 from the end on."""
    if at >= term_end:
        return 0
    return max(1, (_utc_day(term_end) - _utc_day(at)).days)


def days_in_term(term_start: datetime, term_end: datetime) -> int:
    return max(1, (_utc_day(term_end) - _utc_day(term_start)).days)


def prorate(amount_cents: int, term_start: datetime, term_end: datetime, at: datetime) -> int:
    """The part of a whole term's `amount_cents` for the days left at `at`:
    amount × days_left / days_in_term, rounded half-up once. A change on the
    first day costs the whole amount, on the end day one day's, after the end nothing."""
    total_days = days_in_term(term_start, term_end)
    left = min(days_left(term_end, at), total_days)
    return _half_up(Decimal(amount_cents) * left / total_days)


def prorate_to(amount_cents: int, at: datetime, end: datetime) -> int:
    """The part of a whole term's `amount_cents` for the days from `at` to `end`,
    priced as a change made at `at` during the 12-month term that ends at `end`
    (prorate): what seats cost that join a running term and end with it, or what
    moving a term's end from `at` to `end` adds."""
    return prorate(amount_cents, end - relativedelta(months=TERM_MONTHS), end, at)


def apply_rate(cents: int, rate_bp: int) -> int:
    """`rate_bp` basis points (825 = 8.25 %) of `cents`, rounded half-up once."""
    return _half_up(Decimal(cents) * rate_bp / 10_000)


def format_rate(rate_bp: int) -> str:
    """825 → "8.25 %", 2000 → "20 %"."""
    text = f"{Decimal(rate_bp) / 100:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} %"
