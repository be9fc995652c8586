"""A change on the term's last day: it is charged for
at least that day, never $0, so added users are never free."""

from __future__ import annotations

from datetime import timedelta

from portal.domain.billing import changes, money, quotes
from tests.support import PROCESSOR
from tests.test_billing_subscriptions import NOW, actors, bought_online


async def test_a_change_on_the_last_day_is_charged_for_that_day(tree):
    customer, _ = await actors(tree)
    sub = (await bought_online(tree, extra=0))["subscription"]
    at = sub["term_end"] - timedelta(hours=10)  # the end's UTC date
    assert money.days_left(sub["term_end"], at) == 1
    quote = await quotes.quote_change(customer, sub["id"], tier="pro", extra_users=100_000, read_only_users=2, now=at)
    # 100,000 users × $30 × 12 months for 1 of 365 days: $98,630.14.
    assert quote.totals.total_cents == 9_863_014
    assert quote.notes[0].startswith("Charged for the 1 days left of the term")
    changed = await changes.change(
        customer, sub["id"], tier="pro", extra_users=100_000, read_only_users=2, now=at, processor=PROCESSOR
    )
    assert changed["invoice"]["total_cents"] == 9_863_014 and changed["charge"].ok
    assert changed["batch"]["seats"] == 100_000


def test_days_left_counts_the_last_day_until_the_end_and_none_after():
    start = NOW
    end = money.term_end(start)
    assert money.days_left(end, end - timedelta(seconds=1)) == 1
    assert money.days_left(end, end) == 0
    assert money.days_left(end, end + timedelta(days=3)) == 0
    assert money.days_left(end, end - timedelta(days=1)) == 1  # the day before, the same hour: one date left
    assert money.prorate(365_00, start, end, end - timedelta(hours=1)) == 100
