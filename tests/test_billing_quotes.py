"""What a purchase and a change cost, before anything is confirmed: lines, totals,
pro rata to the cent on any day of any term."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import profiles, subscriptions
from portal.domain.billing.quotes import Purchase, parse_change_code, quote_change, quote_purchase
from portal.domain.errors import NotFound, ValidationFailed
from portal.tables.billing import Invoice, Subscription
from tests.support import PROCESSOR
from tests.test_billing_subscriptions import NOW, actors, with_card


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def test_a_purchase_quote_lists_the_tier_the_credits_and_the_add_ons(tree):
    customer, seller = await actors(tree)
    await profiles.save_profile(seller, tree.sub["id"], currency="USD", tax_rate_bp=825, assign_unpaid=False, now=NOW)
    purchase = Purchase("pro", 20, 3, ("onboarding", "report_full", "onboarding"), "online")
    quote = await quote_purchase(customer, tree.north["id"], purchase, NOW)
    assert [(line.code, line.quantity, line.unit_cents, line.amount_cents) for line in quote.lines] == [
        ("pro", 1, 600_000, 600_000),
        ("standard_user", 20, 36_000, 720_000),
        ("read_only_user", 3, 6_000, 18_000),
        ("onboarding", 1, 200_000, 200_000),
        ("report_full", 1, 800_000, 800_000),
    ]
    assert quote.lines[1].description == "Additional standard user, 12 months × $30.00 USD"
    # 8.25 % of $23,380.00 = $1,928.85 (rounded once, on the subtotal)
    assert (quote.totals.subtotal_cents, quote.totals.tax_cents, quote.totals.total_cents) == (
        2_338_000,
        192_885,
        2_530_885,
    )
    assert (quote.term_start, quote.term_end) == (NOW, datetime(2027, 3, 10, 14, 30, tzinfo=UTC))
    assert quote.notes == (
        "30 standard users for 12 months.",
        "Renews automatically on 10 Mar 2027 for the same number of users unless cancelled.",
    )
    by_invoice = await quote_purchase(customer, tree.north["id"], Purchase("lite", 0, 0, (), "invoice"), NOW)
    assert by_invoice.term_start is None and by_invoice.notes[-1] == "The 12 months start when the invoice is paid."
    assert by_invoice.totals.total_cents == 324_750  # $3,000 + 8.25 %


async def test_a_purchase_quote_names_every_bad_field(tree):
    customer, _ = await actors(tree)
    bad = Purchase("gold", -1, 10**9, ("report_none",), "cash")
    with pytest.raises(ValidationFailed) as refused:
        await quote_purchase(customer, tree.north["id"], bad, NOW)
    assert set(refused.value.errors) == {"tier", "extra_users", "read_only_users", "addons", "method"}
    with pytest.raises(ValidationFailed) as refused:
        await quote_purchase(customer, tree.north["id"], Purchase("pro", True, 0, (), "online"), NOW)  # type: ignore[arg-type]
    assert set(refused.value.errors) == {"extra_users"}


async def test_an_item_off_sale_cannot_be_bought_and_a_tier_without_users_needs_some(tree):
    customer, seller = await actors(tree)
    await billing_catalogue.save_item(
        seller, tree.sub["id"], "report_full", price_cents=1, included_users=None, active=False, now=NOW
    )
    with pytest.raises(ValidationFailed) as refused:
        await quote_purchase(customer, tree.north["id"], Purchase("pro", 0, 0, ("report_full",), "online"), NOW)
    assert set(refused.value.errors) == {"addons"}
    await billing_catalogue.save_item(
        seller, tree.sub["id"], "lite", price_cents=1, included_users=0, active=True, now=NOW
    )
    with pytest.raises(ValidationFailed) as refused:
        await quote_purchase(customer, tree.north["id"], Purchase("lite", 0, 0, (), "online"), NOW)
    assert set(refused.value.errors) == {"extra_users"}


async def test_partners_buy_nothing_and_strangers_see_nothing(tree):
    customer, seller = await actors(tree)
    with pytest.raises(NotFound):
        await quote_purchase(seller, tree.sub["id"], Purchase("pro", 0, 0, (), "online"), NOW)
    with pytest.raises(NotFound):
        await quote_purchase(customer, tree.other_customer["id"], Purchase("pro", 0, 0, (), "online"), NOW)


async def _lite_subscription(tree) -> dict:
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"])
    bought = await subscriptions.buy(
        customer, tree.north["id"], Purchase("lite", 3, 1, (), "online"), NOW, processor=PROCESSOR
    )
    return bought["subscription"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2031, 12, 31), timezones=st.just(UTC)),
    day=st.integers(min_value=0, max_value=366),
    hour=st.integers(min_value=0, max_value=23),
    more_users=st.integers(min_value=0, max_value=5_000),
    more_read_only=st.integers(min_value=0, max_value=300),
    upgrade=st.booleans(),
)
async def test_changes_cost_pro_rata_to_the_cent_on_any_day_of_any_term(
    tree, start, day, hour, more_users, more_read_only, upgrade
):
    """amount × days left / days in the term, days from the change's UTC date
    (counted) to the end's (not counted), half-up once per line; lines sum to the subtotal."""
    if not await Subscription.exists():
        await _lite_subscription(tree)
    sub = await Subscription.select().first()
    end = start + relativedelta(months=12)  # 29 February ends on 28 February
    await Subscription.update({Subscription.term_start: start, Subscription.term_end: end}).where(
        Subscription.id == sub["id"]
    )
    at = datetime.combine(start.date() + timedelta(days=day), datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)
    customer, _ = await actors(tree)
    ask = {"tier": "pro" if upgrade else "lite", "extra_users": 3 + more_users, "read_only_users": 1 + more_read_only}
    if at >= end or not (upgrade or more_users or more_read_only):
        with pytest.raises(ValidationFailed):
            await quote_change(customer, sub["id"], now=at, **ask)
        return
    quote = await quote_change(customer, sub["id"], now=at, **ask)
    left = max(1, (end.date() - at.date()).days)  # the end day, before the end's moment, is a day
    total = (end.date() - start.date()).days
    expected = []
    if upgrade:
        expected.append(("pro", 1, half_up(Decimal(300_000) * left / total)))
    if more_users:
        expected.append(("standard_user", more_users, half_up(Decimal(more_users * 36_000) * left / total)))
    if more_read_only:
        expected.append(("read_only_user", more_read_only, half_up(Decimal(more_read_only * 6_000) * left / total)))
    got = []
    for line in quote.lines:
        what = parse_change_code(line.code)
        assert what is not None and line.quantity == 1
        got.append((what.code, what.count, line.amount_cents))
    assert got == expected
    assert quote.totals.subtotal_cents == sum(line.amount_cents for line in quote.lines)
    assert quote.totals.total_cents == quote.totals.subtotal_cents  # tax 0 %
    assert quote.term_end == end and await Invoice.count() == 1  # a quote writes nothing


async def test_fewer_users_quote_nothing_now_and_say_from_when(tree):
    sub = await _lite_subscription(tree)
    customer, _ = await actors(tree)
    quote = await quote_change(
        customer, sub["id"], tier="lite", extra_users=1, read_only_users=0, now=NOW + timedelta(days=2)
    )
    assert quote.lines == () and quote.totals.total_cents == 0
    assert quote.notes == (
        "From 10 Mar 2027: 1 × Additional standard user (now 3); nothing to pay now.",
        "From 10 Mar 2027: 0 × Read-only user (now 1); nothing to pay now.",
    )
    mixed = await quote_change(
        customer, sub["id"], tier="lite", extra_users=5, read_only_users=0, now=NOW + timedelta(days=2)
    )
    assert [parse_change_code(line.code) for line in mixed.lines] == [parse_change_code("change:standard_user:2")]
    assert mixed.notes[0] == "Charged for the 363 days left of the term, until 10 Mar 2027."
