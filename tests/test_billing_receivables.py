"""Receivables: days overdue, the outstanding total of the filtered invoice list and the
ageing buckets at their boundaries (30/31, 60/61, 90/91 days), with the clock passed in;
the ageing CSV over HTTP, for partner staff only, within their wing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from portal import db
from portal.domain.access import load_actor
from portal.domain.billing import invoices, receivables
from portal.domain.billing.invoices import Line
from portal.tables.billing import Invoice
from portal.web.billing.export import AGEING_HEADER
from tests.factories import T0
from tests.support import sign_in

NOW = datetime(2026, 6, 30, 15, 0, tzinfo=UTC)
TODAY = datetime(2026, 6, 30, tzinfo=UTC)


async def actor_of(tree, key):
    actor = await load_actor(tree.managers[key]["id"], None)
    assert actor is not None
    return actor


async def owed(tree, customer: str, dollars: int, due_at: datetime, status: str = "issued") -> dict:
    """An invoice of `dollars` (no tax) to `customer`, due at `due_at`, left `status`."""
    seller = {"direct": tree.partner, "north": tree.sub, "other_customer": tree.other}[customer]
    async with db.write_transaction():
        invoice = await invoices.create_invoice(
            partner_id=seller["id"],
            company_id=getattr(tree, customer)["id"],
            kind="addon",
            lines=[Line("onboarding", "Onboarding online course", 1, dollars * 100)],
            now=T0,
        )
    await Invoice.update({Invoice.due_at: due_at, Invoice.status: status}).where(Invoice.id == invoice["id"])
    return {**invoice, "due_at": due_at, "status": status}


def test_days_overdue_are_calendar_days_from_the_due_date():
    assert receivables.days_overdue(TODAY + timedelta(days=1), NOW) == -1
    assert receivables.days_overdue(TODAY + timedelta(hours=23, minutes=59), NOW) == 0  # later today: due today
    assert receivables.days_overdue(TODAY, NOW) == 0
    assert receivables.days_overdue(TODAY - timedelta(microseconds=1), NOW) == 1
    assert receivables.days_overdue(None, NOW) is None
    assert [receivables.bucket_of(d).key for d in (-5, -1, 0, 30, 31, 60, 61, 90, 91, 400)] == [
        "current",
        "current",
        "days_0_30",
        "days_0_30",
        "days_31_60",
        "days_31_60",
        "days_61_90",
        "days_61_90",
        "days_over_90",
        "days_over_90",
    ]


# (days overdue, the instant of that day it is due at, the bucket): each boundary day at its
# first and last instant, so a comparison off by one instant or one day puts a row elsewhere.
EDGES = [
    (-1, "first", "current"),
    (0, "last", "days_0_30"),
    (0, "first", "days_0_30"),
    (30, "first", "days_0_30"),
    (31, "last", "days_31_60"),
    (60, "first", "days_31_60"),
    (61, "last", "days_61_90"),
    (90, "first", "days_61_90"),
    (91, "last", "days_over_90"),
]


def _due(days: int, instant: str) -> datetime:
    day = TODAY - timedelta(days=days)
    return day if instant == "first" else day + timedelta(days=1, microseconds=-1)


async def test_the_ageing_puts_each_unpaid_invoice_in_its_bucket_at_the_boundaries(tree):
    expected = {b.key: 0 for b in receivables.BUCKETS}
    for position, (days, instant, bucket) in enumerate(EDGES):
        dollars = 2**position  # each invoice's amount is one bit: a sum says which invoices it holds
        due = _due(days, instant)
        await owed(tree, "direct", dollars, due)
        assert receivables.days_overdue(due, NOW) == days
        assert receivables.bucket_of(days).key == bucket
        expected[bucket] += dollars * 100
    # Paid, void and another tenant's invoices owe nothing here.
    await owed(tree, "direct", 1000, _due(45, "first"), status="paid")
    await owed(tree, "direct", 2000, _due(45, "first"), status="void")
    await owed(tree, "other_customer", 4000, _due(45, "first"))

    rows = await receivables.ageing(await actor_of(tree, "partner"), {}, NOW)
    assert len(rows) == 1
    row = rows[0]
    assert (row["customer"], row["seller"], row["currency"]) == ("Direct Customer", "Acme MSP", "USD")
    assert {b.key: row[b.key] for b in receivables.BUCKETS} == expected
    assert expected == {
        "current": 1 * 100,
        "days_0_30": (2 + 4 + 8) * 100,
        "days_31_60": (16 + 32) * 100,
        "days_61_90": (64 + 128) * 100,
        "days_over_90": 256 * 100,
    }
    assert row["total_cents"] == 511 * 100
    assert row["invoices"] == len(EDGES)

    # A day later every invoice is a day later: the one due on day 30 moves to 31–60.
    later = await receivables.ageing(await actor_of(tree, "partner"), {}, NOW + timedelta(days=1))
    assert later[0]["days_0_30"] == (1 + 2 + 4) * 100
    assert later[0]["days_31_60"] == (8 + 16) * 100


async def test_the_ageing_has_a_row_per_customer_within_the_wing_and_the_list_filters(tree):
    await owed(tree, "direct", 100, _due(10, "first"))
    await owed(tree, "north", 200, _due(40, "first"))
    await owed(tree, "other_customer", 300, _due(10, "first"))

    top = await receivables.ageing(await actor_of(tree, "partner"), {}, NOW)
    assert [(r["customer"], r["seller"], r["days_0_30"], r["days_31_60"]) for r in top] == [
        ("Direct Customer", "Acme MSP", 10000, 0),
        ("North Customer", "Acme North", 0, 20000),
    ]
    sub = await receivables.ageing(await actor_of(tree, "sub"), {}, NOW)
    assert [r["customer"] for r in sub] == ["North Customer"]
    only = await receivables.ageing(await actor_of(tree, "partner"), {"customer": tree.direct["id"]}, NOW)
    assert [r["customer"] for r in only] == ["Direct Customer"]
    other = await receivables.ageing(await actor_of(tree, "other"), {}, NOW)
    assert [(r["customer"], r["total_cents"]) for r in other] == [("Other Customer", 30000)]


async def test_the_outstanding_total_is_what_the_filtered_list_still_owes(tree):
    partner = await actor_of(tree, "partner")
    assert await receivables.outstanding_totals(partner, {}) == []
    await owed(tree, "direct", 100, _due(10, "first"))
    await owed(tree, "direct", 50, _due(-3, "first"))
    await owed(tree, "direct", 999, _due(10, "first"), status="paid")
    await owed(tree, "north", 200, _due(40, "first"))
    await owed(tree, "other_customer", 300, _due(10, "first"))

    assert await receivables.outstanding_totals(partner, {}) == [
        {"currency": "USD", "total_cents": 35000, "invoices": 3}
    ]
    direct = await receivables.outstanding_totals(partner, {"customer": tree.direct["id"]})
    assert direct == [{"currency": "USD", "total_cents": 15000, "invoices": 2}]
    # A customer manager's own company only.
    assert await receivables.outstanding_totals(await actor_of(tree, "north"), {}) == [
        {"currency": "USD", "total_cents": 20000, "invoices": 1}
    ]
    assert await receivables.outstanding_totals(partner, {"status": "paid"}) == []


async def test_the_invoice_list_shows_due_date_days_overdue_and_the_outstanding_total(client, tree):
    now = datetime.now(UTC)
    late = await owed(tree, "direct", 100, now - timedelta(days=12))
    await owed(tree, "north", 250, now + timedelta(days=5))
    await sign_in(client, tree.email("partner"))
    page = await client.get("/billing/invoices")
    assert page.status_code == 200
    assert 'data-testid="outstanding">Outstanding:' in page.text
    assert "$350.00 USD</strong> (2 unpaid)" in page.text
    row = page.text.split(f'data-invoice="{late["id"]}"')[1].split("</tr>")[0]
    assert (now - timedelta(days=12)).strftime("%d %b %Y") in row
    assert 'data-testid="days-overdue"><strong>12</strong>' in row
    assert f'href="/invoices/{late["id"]}/pdf" download' in row
    assert 'href="/billing/invoices/ageing.csv" download' in page.text

    narrowed = await client.get(
        f"/billing/invoices?customer={tree.north['id']}", headers={"HX-Request": "true", "HX-Target": "billing-results"}
    )
    assert "Outstanding in these invoices:" in narrowed.text and "$250.00 USD</strong> (1 unpaid)" in narrowed.text
    assert f'href="/billing/invoices/ageing.csv?customer={tree.north["id"]}"' in narrowed.text


async def test_the_ageing_csv_has_a_row_per_customer_with_its_buckets(client, tree):
    now = datetime.now(UTC)
    await owed(tree, "direct", 100, now - timedelta(days=45))
    await owed(tree, "direct", 20, now - timedelta(days=100))
    await owed(tree, "north", 7, now + timedelta(days=3))
    await owed(tree, "other_customer", 300, now - timedelta(days=45))
    await sign_in(client, tree.email("partner"))
    answer = await client.get("/billing/invoices/ageing.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="ageing-')
    rows = list(csv.reader(io.StringIO(answer.text.removeprefix("\ufeff"))))
    assert tuple(rows[0]) == AGEING_HEADER
    assert rows[0] == [
        "Customer",
        "Seller",
        "Currency",
        "Current (not yet due)",
        "0–30 days overdue",
        "31–60 days overdue",
        "61–90 days overdue",
        "90+ days overdue",
        "Outstanding",
        "Unpaid invoices",
    ]
    assert rows[1:] == [
        ["Direct Customer", "Acme MSP", "USD", "0.00", "0.00", "100.00", "0.00", "20.00", "120.00", "2"],
        ["North Customer", "Acme North", "USD", "7.00", "0.00", "0.00", "0.00", "0.00", "7.00", "1"],
    ]
    narrowed = await client.get(f"/billing/invoices/ageing.csv?customer={tree.north['id']}")
    assert [r[0] for r in csv.reader(io.StringIO(narrowed.text.removeprefix("\ufeff")))][1:] == ["North Customer"]


@pytest.mark.parametrize("who", ["direct", "north"])
async def test_customer_managers_get_no_ageing_csv(client, tree, who):
    await owed(tree, "direct", 100, datetime.now(UTC) - timedelta(days=45))
    await sign_in(client, tree.email(who))
    answer = await client.get("/billing/invoices/ageing.csv")
    assert answer.status_code in (403, 404)
    assert not answer.headers["content-type"].startswith("text/csv")
    assert "0–30 days overdue" not in answer.text
