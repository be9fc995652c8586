"""Money, terms and pro rata: whole cents, half-up once, 12 calendar months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.domain.billing import money
from portal.domain.billing.invoices import Line, format_invoice_number, totals


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        (Decimal("0"), 0),
        (Decimal("12.34"), 1234),
        (Decimal("0.005"), 1),
        (Decimal("0.0049"), 0),
        (Decimal("2.675"), 268),
        (Decimal("-0.005"), -1),
        (Decimal("3000"), 300000),
    ],
)
def test_to_cents_rounds_half_up(amount, cents):
    assert money.to_cents(amount) == cents


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [
        (123456, "USD", "$1,234.56 USD"),
        (5, "EUR", "€0.05 EUR"),
        (100000000, "GBP", "£1,000,000.00 GBP"),
        (-500, "USD", "-$5.00 USD"),
        (199, "CAD", "1.99 CAD"),
        (0, "USD", "$0.00 USD"),
    ],
)
def test_format_money_shows_the_currency(cents, currency, text):
    assert money.format_money(cents, currency) == text


def test_term_end_29_february_ends_28_february():
    start = datetime(2028, 2, 29, 10, 30, tzinfo=UTC)
    assert money.term_end(start) == datetime(2029, 2, 28, 10, 30, tzinfo=UTC)
    assert money.term_end(datetime(2027, 3, 31, tzinfo=UTC)) == datetime(2028, 3, 31, tzinfo=UTC)


def test_prorate_examples():
    start = datetime(2026, 1, 15, 9, tzinfo=UTC)
    end = money.term_end(start)  # 365 days
    # First day: the whole amount; the last day (and the end's own date before the end): one day; from the end: nothing.
    assert money.prorate(300000, start, end, start) == 300000
    assert money.prorate(300000, start, end, end - timedelta(days=1)) == 822  # 300000 / 365 = 821.9…
    assert money.prorate(300000, start, end, end - timedelta(hours=1)) == 822  # the last day is one day
    assert money.prorate(300000, start, end, end) == 0
    assert money.prorate(300000, start, end, end + timedelta(days=40)) == 0
    # Half a term (day 183 of 365 left): 7200 × 182 / 365 = 3590.13… → 3590.
    assert money.days_left(end, start + timedelta(days=183)) == 182
    assert money.prorate(7200, start, end, start + timedelta(days=183)) == 3590
    # Counted by UTC date: 23:59 and 00:01 of the same UTC day cost the same.
    day = datetime(2026, 6, 1, tzinfo=UTC)
    assert money.prorate(300000, start, end, day) == money.prorate(300000, start, end, day + timedelta(hours=23))


def test_prorate_leap_term_has_366_days():
    start = datetime(2027, 6, 1, tzinfo=UTC)
    end = money.term_end(start)
    assert money.days_in_term(start, end) == 366
    assert money.prorate(366_00, start, end, datetime(2028, 5, 31, tzinfo=UTC)) == 100


def test_rates():
    assert money.apply_rate(10_000, 825) == 825
    assert money.apply_rate(1_01, 825) == 8  # 8.3325 → 8
    assert money.apply_rate(6_00, 825) == 50  # 49.5 → 50, half-up
    assert money.format_rate(825) == "8.25 %"
    assert money.format_rate(2000) == "20 %"
    assert money.format_rate(0) == "0 %"


def test_invoice_numbers():
    assert format_invoice_number(1) == "INV-00001"
    assert format_invoice_number(123) == "INV-00123"
    assert format_invoice_number(1234567) == "INV-1234567"


moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(
    start=moments,
    offset=st.integers(min_value=-5, max_value=400),
    users=st.integers(0, 5000),
    monthly=st.integers(0, 100_000),
)
def test_prorate_is_the_exact_fraction_rounded_half_up_once(start, offset, users, monthly):
    """amount × days_left / days_in_term to the cent, for any day of any term (29 Feb included)."""
    end = money.term_end(start)
    at = start + timedelta(days=offset)
    amount = users * monthly * 12
    total_days = (end.date() - start.date()).days
    left = 0 if at >= end else min(max(1, (end.date() - at.date()).days), total_days)
    exact = Fraction(amount * left, total_days)
    charged = money.prorate(amount, start, end, at)
    # Half-up: the charged cents are within half a cent of the exact amount, a half rounding up.
    assert exact - Fraction(1, 2) < charged <= exact + Fraction(1, 2)
    assert 0 <= charged <= amount
    assert total_days in (365, 366)


@settings(max_examples=200, deadline=None)
@given(
    start=moments,
    offset=st.integers(min_value=0, max_value=365),
    counts=st.lists(st.integers(1, 500), max_size=8),
    rate=st.integers(0, 10_000),
)
def test_invoice_totals_equal_the_sum_of_their_lines(start, offset, counts, rate):
    """Pro-rata lines are rounded once each; the subtotal is their sum; tax is rounded once on it."""
    end = money.term_end(start)
    at = start + timedelta(days=offset)
    lines = [Line("standard_user", f"{n} users", 1, money.prorate(n * 30_00 * 12, start, end, at)) for n in counts]
    lines.append(Line("pro", "Pro", 1, 6_000_00))
    result = totals(lines, rate, "USD")
    assert result.subtotal_cents == sum(line.amount_cents for line in lines)
    exact_tax = Fraction(result.subtotal_cents * rate, 10_000)
    assert exact_tax - Fraction(1, 2) < result.tax_cents <= exact_tax + Fraction(1, 2)
    assert result.total_cents == result.subtotal_cents + result.tax_cents
    assert result.currency == "USD"


@given(start=moments)
def test_every_term_is_twelve_calendar_months(start):
    end = money.term_end(start)
    assert (end.year - start.year) * 12 + end.month - start.month == 12
    assert end.time() == start.time()
    if start.month == 2 and start.day == 29:
        assert end.day == 28
    else:
        assert end.day == start.day


@settings(max_examples=300, deadline=None)
@given(
    end=moments,
    before=st.integers(min_value=-5, max_value=400),
    seats=st.integers(0, 5000),
    monthly=st.integers(0, 100_000),
)
def test_co_termed_seats_are_the_exact_fraction_of_the_term_ending_then_rounded_half_up_once(
    end, before, seats, monthly
):
    """Seats added `before` days ahead of a term's end, ending with it: amount × days
    left / days of the 12-month term ending then, to the cent, as prorate prices
    users added to a subscription; a year's price at most, nothing from the end on."""
    at = end - timedelta(days=before)
    amount = seats * monthly * 12
    start = end - relativedelta(months=12)
    total_days = (end.date() - start.date()).days
    left = 0 if at >= end else min(max(1, (end.date() - at.date()).days), total_days)
    exact = Fraction(amount * left, total_days)
    charged = money.prorate_to(amount, at, end)
    assert exact - Fraction(1, 2) < charged <= exact + Fraction(1, 2)
    assert 0 <= charged <= amount
    assert charged == money.prorate(amount, start, end, at)
    assert total_days in (365, 366)


@settings(max_examples=200, deadline=None)
@given(at=moments, first=st.integers(1, 364), second=st.integers(1, 364), seats=st.integers(1, 500))
def test_a_later_co_term_end_never_costs_less(at, first, second, seats):
    """Ending later never costs less: the pro-rata price grows with the days to the end,
    also where the later end's term holds a 29 February."""
    near, far = sorted((first, second))
    amount = seats * 30_00 * 12
    assert money.prorate_to(amount, at, at + timedelta(days=near)) <= money.prorate_to(
        amount, at, at + timedelta(days=far)
    )
