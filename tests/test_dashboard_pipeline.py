"""The renewal pipeline in money: each batch's state (renewed, renewal requested,
lapsed, open) by the period it ends in, valued at its seller's yearly price of a
standard user in the seller's currency; the next 30/60/90 days; the renewal rate per
customer; the page, its CSV and the Admin Dashboard's card. Each engine."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta

from portal import db
from portal.domain.access import load_actor
from portal.domain.catalogue import TRIAL
from portal.domain.dashboard import pipeline, same_quantity
from portal.domain.errors import PermissionDenied
from portal.domain.orders import decisions, requests
from portal.tables import Product
from portal.tables.billing import BillingProfile, CatalogueItem
from tests.support import sign_in

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
YEAR = relativedelta(months=12)


async def batch_ending(partner, company: dict, seats: int, ends: datetime, product: int | None = None) -> dict:
    """A batch of `seats` assigned 12 months before `ends`."""
    starts = ends - YEAR
    order = await requests.request_order(partner, company["id"], seats, product, "", starts)
    return await decisions.assign_order(partner, order["id"], starts)


async def price(seller: dict, cents: int, period: str, currency: str = "USD") -> None:
    async with db.write_transaction():
        await CatalogueItem.insert(
            CatalogueItem(
                partner=seller["id"],
                code="standard_user",
                kind="user_credit",
                name="Seat",
                price_cents=cents,
                period=period,
            )  # fmt: skip
        )
        await BillingProfile.insert(BillingProfile(company=seller["id"], currency=currency))


async def scene(tree) -> dict:
    """Direct Customer (sold by Acme MSP, $20 a month = $240 a year a seat):
    5 seats lapsed 10 days ago, 4 ending in 2 days renewed already, 10 ending in
    45 days with a renewal requested, 7 ending in 80 days open, a 30-day trial.
    North Customer (sold by Acme North, €100 a year): 3 seats lapsed in May, 6
    ending in 20 days open."""
    partner = await load_actor(tree.managers["partner"]["id"], None)
    await price(tree.partner, 20_00, "month")
    await price(tree.sub, 100_00, "year", "EUR")
    direct, north = tree.direct, tree.north
    lapsed = await batch_ending(partner, direct, 5, NOW - timedelta(days=10))
    renewed = await batch_ending(partner, direct, 4, NOW + timedelta(days=2))
    await same_quantity.renew_same_quantity(partner, renewed["id"], NOW)
    requested = await batch_ending(partner, direct, 10, NOW + timedelta(days=45))
    await requests.request_order(partner, direct["id"], 10, None, "", NOW, renews_batch=requested["id"])
    await batch_ending(partner, direct, 7, NOW + timedelta(days=80))
    trial = (await Product.select(Product.id).where(Product.code == TRIAL).first())["id"]
    await batch_ending(partner, direct, 30, NOW + timedelta(days=3), product=trial)
    await batch_ending(partner, north, 3, datetime(2026, 5, 20, tzinfo=UTC))
    await batch_ending(partner, north, 6, NOW + timedelta(days=20))
    return {"partner": partner, "lapsed": lapsed}


def usd(dollars: int) -> pipeline.Money:
    return pipeline.Money.of({"USD": dollars * 100})


def eur(euros: int) -> pipeline.Money:
    return pipeline.Money.of({"EUR": euros * 100})


async def test_each_month_in_seats_and_money_by_state(tree):
    partner = (await scene(tree))["partner"]
    months = {p.start.strftime("%Y-%m"): p for p in await pipeline.pipeline(partner, "month", NOW)}
    assert list(months)[0] == "2025-12" and list(months)[-1] == "2027-05"  # 6 behind, 12 ahead
    may, june, july, august = months["2026-05"], months["2026-06"], months["2026-07"], months["2026-08"]
    assert may.past and not june.past
    # Direct's 5 ended on 31 May, North's 3 on 20 May: one row each currency.
    assert (may.of("lapsed", "EUR").seats, may.of("lapsed", "EUR").value) == (3, eur(300))
    assert (may.of("lapsed", "USD").seats, may.of("lapsed", "USD").value) == (5, usd(1200))
    assert may.of("lapsed").value == usd(1200) + eur(300)
    assert (june.of("renewed").seats, june.of("renewed").value) == (4, usd(960))
    assert (june.of("open").seats, june.of("open").value) == (6, eur(600))
    assert june.ending().value == usd(960) + eur(600)
    assert (july.of("requested").seats, july.of("requested").value) == (10, usd(2400))
    assert (august.of("open").seats, august.of("open").value) == (7, usd(1680))
    # The renewal made on 10 June ends in June 2027; the trial counts nowhere.
    assert months["2027-05"].ending().seats == 0
    assert sum(p.ending().seats for p in months.values()) == 5 + 4 + 10 + 7 + 3 + 6


async def test_the_next_30_60_90_days(tree):
    partner = (await scene(tree))["partner"]
    thirty, sixty, ninety = await pipeline.horizons(partner, NOW)
    assert (thirty.ending.seats, thirty.ending.value) == (10, usd(960) + eur(600))
    assert (thirty.renewed.seats, thirty.open.value) == (4, eur(600))
    assert (sixty.ending.seats, sixty.renewed.value) == (20, usd(960 + 2400))
    assert (ninety.ending.seats, ninety.open.value) == (27, usd(1680) + eur(600))


async def test_renewal_rate_per_customer_lowest_first(tree):
    partner = (await scene(tree))["partner"]
    later = NOW + timedelta(days=50)  # Direct: 5 lapsed, 4 renewed, 10 requested (not renewed) ended since
    rates = await pipeline.renewal_rates(partner, later)
    assert [(r.name, r.ended, r.renewed) for r in rates.items] == [
        ("North Customer", 9, 0),
        ("Direct Customer", 19, 4),
    ]
    assert rates.items[0].value_lost == eur(900) and rates.items[1].value_lost == usd(15 * 240)
    assert rates.total == 2


async def test_a_sub_partner_sees_its_wing_and_a_customer_manager_nothing(tree):
    await scene(tree)
    sub = await load_actor(tree.managers["sub"]["id"], None)
    months = await pipeline.pipeline(sub, "week", NOW)
    assert sum(p.ending().seats for p in months) == 3 + 6
    assert all(currency == "EUR" for p in months for currency in p.by_currency)
    customer = await load_actor(tree.managers["direct"]["id"], None)
    with pytest.raises(PermissionDenied):
        await pipeline.pipeline(customer, "month", NOW)
    other = await load_actor(tree.managers["other"]["id"], None)
    assert sum(p.ending().seats for p in await pipeline.pipeline(other, "month", NOW)) == 0


async def test_a_seller_without_a_catalogue_is_valued_at_the_default_price(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    await batch_ending(partner, tree.direct, 2, NOW + timedelta(days=5))
    thirty = (await pipeline.horizons(partner, NOW))[0]
    assert thirty.ending.value == usd(2 * 30 * 12)  # "Additional standard user", $30 a month


async def test_page_csv_and_dashboard_card(client, tree, monkeypatch):
    await scene(tree)
    monkeypatch.setattr("portal.web.pipeline.utcnow", lambda: NOW)
    monkeypatch.setattr("portal.web.dashboard.utcnow", lambda: NOW)
    await sign_in(client, tree.managers["partner"]["email"])
    page = await client.get("/dashboard/pipeline")
    assert page.status_code == 200
    assert "Renewal pipeline" in page.text and "June 2026" in page.text
    assert "€600.00 EUR + $960.00 USD" in page.text
    listed = await client.get("/dashboard/pipeline/pipeline.csv?period=month")
    assert listed.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(listed.text.lstrip("\ufeff"))))
    june = {row["Currency"]: row for row in rows if row["Period starts"] == "2026-06-01"}
    assert june["USD"]["Renewed (seats)"] == "4" and june["USD"]["Renewed (value)"] == "960.00"
    assert june["EUR"]["Not renewed yet (value)"] == "600.00" and june["EUR"]["Seats ending"] == "6"
    assert len([row for row in rows if row["Period starts"] == "2027-01-01"]) == 1  # nothing ending: one row
    dashboard = await client.get("/dashboard")
    assert "Renewals coming up" in dashboard.text and 'href="/dashboard/pipeline"' in dashboard.text
    await sign_in(client, tree.managers["direct"]["email"])
    assert (await client.get("/dashboard/pipeline")).status_code == 403
    assert (await client.get("/dashboard/pipeline/pipeline.csv")).status_code == 403
