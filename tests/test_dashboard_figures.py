"""The dashboard's kept figures (dashboard_figure, migration 0004) stay
right through every kind of write and through the clock, on each engine; and the
free-seat alert and largest order are a partner setting saved from the dashboard."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from portal import db
from portal.domain import partner_settings, users
from portal.domain.access import load_actor
from portal.domain.companies import insert_company
from portal.domain.dashboard import figures, wing_batches
from portal.domain.dashboard.figures import CustomerQuery
from portal.domain.imports import apply as applying
from portal.domain.imports import preview
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions, requests
from portal.tables import Company, PartnerSetting
from portal.tables.dashboard import DashboardFigure
from tests.support import csrf_of, import_files_here, sign_in
from tests.test_dashboard import FIGURES, NOW, batch_ending, counted_from_users, learners


async def partner_of(tree):
    return await load_actor(tree.managers["partner"]["id"], None)


async def shown(partner, now: datetime) -> dict[str, dict]:
    listing = await figures.customer_figures(partner, CustomerQuery(), now)
    return {row["name"]: row for row in listing.page.items}


async def assert_exact(partner, tree, now: datetime) -> None:
    """Every kept row that claims to be fresh agrees with counting from scratch,
    and the page shows what the users, batches and orders say."""
    assert await figures.figures_drift(now) == []
    rows = await shown(partner, now)
    for name in ("Direct Customer", "North Customer"):
        company = tree.direct if name == "Direct Customer" else tree.north
        assert {k: rows[name][k] for k in FIGURES if k != "next_end"} == await counted_from_users(company["id"], now)
    assert await figures.figures_drift(now) == []


async def fresh_rows() -> int:
    return await DashboardFigure.count().where(DashboardFigure.computed_at.is_not_null())


async def test_every_kind_of_write_leaves_the_kept_figures_exact(tree):
    partner = await partner_of(tree)
    customer = await load_actor(tree.managers["direct"]["id"], None)
    direct = tree.direct
    await assert_exact(partner, tree, NOW)
    assert await fresh_rows() >= 2  # the page wrote its counts back

    # Orders: a request, then assigning it (a batch), declining and cancelling others.
    order = await requests.request_order(customer, direct["id"], 6, None, "", NOW)
    await assert_exact(partner, tree, NOW)
    await decisions.assign_order(partner, order["id"], NOW)
    await assert_exact(partner, tree, NOW)
    declined = await requests.request_order(customer, direct["id"], 2, None, "", NOW)
    await assert_exact(partner, tree, NOW)
    await decisions.decline_order(partner, declined["id"], "Too many.", NOW)
    await assert_exact(partner, tree, NOW)
    cancelled = await requests.request_order(customer, direct["id"], 3, None, "", NOW)
    await assert_exact(partner, tree, NOW)
    await decisions.cancel_order(customer, cancelled["id"], NOW)
    await assert_exact(partner, tree, NOW)

    # Users: new learners (unlicensed), allocation, deactivation.
    new = await learners(direct, 3, "fig")
    await assert_exact(partner, tree, NOW)
    await allocation.allocate(partner, direct["id"], Selection(user_ids=tuple(new[:2])), NOW)
    await assert_exact(partner, tree, NOW)
    await allocation.deactivate_user(partner, new[0], NOW)
    await assert_exact(partner, tree, NOW)
    await users.create_user(partner, direct["id"], "late@direct.example", "Late Learner", "learner", NOW)
    await assert_exact(partner, tree, NOW)

    # CSV renewal: an expired learner of North renewed from a running batch.
    gone = await learners(tree.north, 2, "csv")
    await batch_ending(partner, tree.north, 2, NOW - timedelta(days=2), gone)
    await batch_ending(partner, tree.north, 4, NOW + timedelta(days=200))
    await assert_exact(partner, tree, NOW)
    north_manager = await load_actor(tree.managers["north"]["id"], None)
    text = f"email\r\ncsv0@{tree.north['id']}.example\r\ncsv1@{tree.north['id']}.example\r\n"
    import_id = await preview.receive(
        north_manager, tree.north["id"], "renew.csv", io.BytesIO(text.encode()), NOW, import_files_here()
    )
    result = await applying.apply(north_manager, tree.north["id"], import_id, NOW, import_files_here())
    assert result["renewed"] == 2
    await assert_exact(partner, tree, NOW)
    assert (await shown(partner, NOW))["North Customer"]["free"] == 2

    # A new customer shows at once, with its own figures.
    async with db.write_transaction():
        await insert_company("Fresh Customer", "customer", tree.partner, NOW)
    assert "Fresh Customer" in await shown(partner, NOW)
    assert await figures.figures_drift(NOW) == []


async def test_kept_figures_follow_the_clock(tree):
    """A row written at NOW is not used once a batch ends or comes within 72 hours
    or 30 days: the figures at any later instant are counted again."""
    partner = await partner_of(tree)
    direct = tree.direct
    await batch_ending(partner, direct, 5, NOW + timedelta(days=40), await learners(direct, 2, "a"))
    await batch_ending(partner, direct, 3, NOW + timedelta(days=5), await learners(direct, 3, "b"))
    first = (await shown(partner, NOW))["Direct Customer"]
    assert (first["expired"], first["expiring_72h"], first["expiring_30d"], first["free"]) == (0, 0, 3, 3)
    for later, expected in [
        (NOW + timedelta(days=2, hours=1), (0, 3, 3, 3)),  # the 5-day batch is within 72 hours
        (NOW + timedelta(days=5), (3, 0, 0, 3)),  # it ended: its users expired, its seats are gone
        (NOW + timedelta(days=11), (3, 0, 2, 3)),  # the 40-day batch comes within 30 days
        (NOW + timedelta(days=40), (5, 0, 0, 0)),  # everything ended: nothing free
    ]:
        row = (await shown(partner, later))["Direct Customer"]
        assert (row["expired"], row["expiring_72h"], row["expiring_30d"], row["free"]) == expected, later
        assert {k: row[k] for k in FIGURES if k != "next_end"} == await counted_from_users(direct["id"], later)
        assert await figures.figures_drift(later) == []
    # An earlier instant than the one a row was computed at is counted again too.
    again = (await shown(partner, NOW))["Direct Customer"]
    assert {k: again[k] for k in FIGURES} == {k: first[k] for k in FIGURES}


async def test_stale_rows_are_counted_in_the_page_even_when_not_written_back(tree, monkeypatch):
    """The page's figures never depend on the write-back: refused (a locked row,
    a busy database), the page counts the stale rows itself."""
    partner = await partner_of(tree)
    await batch_ending(partner, tree.direct, 4, NOW + timedelta(days=3), await learners(tree.direct, 1, "s"))

    async def refused(actor, now):
        return 0

    monkeypatch.setattr(figures, "refresh", refused)
    assert await fresh_rows() == 0
    row = (await shown(partner, NOW))["Direct Customer"]
    assert (row["expiring_30d"], row["free"], row["unlicensed"]) == (1, 3, 1)
    assert await fresh_rows() == 0


async def test_a_refresh_skips_a_row_a_writer_holds_and_the_writer_marks_it(tree):
    """PostgreSQL: a writer's trigger locks the company's figure row until it
    commits; a refresh meanwhile leaves that row (never waits, never writes
    figures that miss the writer's change), and the row is stale after the
    commit. SQLite has one writer at a time: a refresh writes every stale row."""
    partner = await partner_of(tree)
    batch = await batch_ending(partner, tree.direct, 4, NOW + timedelta(days=90))
    await figures.customer_figures(partner, CustomerQuery(), NOW)
    await DashboardFigure.update({DashboardFigure.computed_at: None}, force=True)
    if not db.is_postgres():
        assert await figures.refresh(partner, NOW) == 2
        assert await figures.figures_drift(NOW) == [] and await fresh_rows() == 2
        return
    import asyncpg

    from portal.settings import get_settings

    writer = await asyncpg.connect(get_settings().database_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute("UPDATE licence_batch SET seats = 9 WHERE id = $1", batch["id"])
        assert await figures.refresh(partner, NOW) == 1  # North only: Direct's row is the writer's
        await transaction.commit()
    finally:
        await writer.close()
    direct_row = await DashboardFigure.select().where(DashboardFigure.company == tree.direct["id"]).first()
    assert direct_row["computed_at"] is None
    assert (await shown(partner, NOW))["Direct Customer"]["free"] == 9


# --- the partner's settings, from the dashboard -------------------------------------------


async def test_free_seat_alert_follows_the_nearest_partner_setting(tree):
    partner = await partner_of(tree)
    sub = await load_actor(tree.managers["sub"]["id"], None)
    await batch_ending(partner, tree.direct, 5, NOW + timedelta(days=100), await learners(tree.direct, 2, "x"))
    await batch_ending(partner, tree.north, 5, NOW + timedelta(days=100), await learners(tree.north, 2, "y"))
    await learners(tree.direct, 1, "w")
    await learners(tree.north, 1, "w")
    # Default: 0 free seats with users waiting. Both have 3 free.
    assert (await figures.customer_figures(partner, CustomerQuery(), NOW)).alerts == 0
    await partner_settings.save(partner, tree.partner["id"], max_order_quantity=500, low_seat_threshold=3, now=NOW)
    listing = await figures.customer_figures(partner, CustomerQuery(), NOW)
    assert listing.alerts == 2 and listing.settings.low_seat_threshold == 3
    assert listing.settings.max_order_quantity == 500
    # The sub-partner's own setting wins below it: North is no longer alerted.
    await partner_settings.save(sub, tree.sub["id"], max_order_quantity=500, low_seat_threshold=2, now=NOW)
    rows = {r["name"]: r for r in (await figures.customer_figures(partner, CustomerQuery(), NOW)).page.items}
    assert rows["Direct Customer"]["alert"] and not rows["North Customer"]["alert"]
    assert (await figures.customer_figures(sub, CustomerQuery(), NOW)).settings.low_seat_threshold == 2


async def test_settings_form_saves_and_says_what_changed(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert "Alert when free seats are at or below" in page.text and "Largest order" in page.text
    assert 'name="low_seat_threshold"' in page.text and 'value="10000"' in page.text
    token = csrf_of(page.text)
    saved = await client.post(
        "/dashboard/settings", data={"_csrf_token": token, "low_seat_threshold": "5", "max_order_quantity": "10000"}
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/dashboard#settings"
    after = await client.get("/dashboard")
    assert "Free-seat alert set to 5 for Acme MSP and the companies under it." in after.text
    assert 'id="low-seat-threshold"' in after.text and 'value="5"' in after.text
    row = await PartnerSetting.select().where(PartnerSetting.company == tree.partner["id"]).first()
    assert (row["low_seat_threshold"], row["max_order_quantity"]) == (5, 10_000)

    both = await client.post(
        "/dashboard/settings", data={"_csrf_token": token, "low_seat_threshold": "2", "max_order_quantity": "250"}
    )
    assert both.status_code == 303
    assert (
        "Free-seat alert set to 2 and Largest order set to 250 for Acme MSP and the companies under it."
        in (await client.get("/dashboard")).text
    )


@pytest.mark.parametrize(
    ("threshold", "largest", "field", "message"),
    [
        ("five", "100", "low_seat_threshold", "Enter the free-seat alert as a whole number"),
        ("-1", "100", "low_seat_threshold", "The free-seat alert must be a whole number from 0"),
        ("3", "0", "max_order_quantity", "The largest order must be a whole number from 1"),
        ("3", "", "max_order_quantity", "Enter the largest order as a whole number"),
    ],
)
async def test_settings_form_refuses_bad_numbers_where_they_were_typed(
    client, tree, threshold, largest, field, message
):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/dashboard")
    refused = await client.post(
        "/dashboard/settings",
        data={"_csrf_token": csrf_of(page.text), "low_seat_threshold": threshold, "max_order_quantity": largest},
    )
    assert refused.status_code == 400
    assert message in refused.text and 'aria-invalid="true"' in refused.text
    assert f'value="{threshold}"' in refused.text  # what was typed stays in the field
    assert await PartnerSetting.count() == 0  # nothing half-written


async def test_settings_form_is_a_partner_managers(client, tree):
    await sign_in(client, tree.email("direct"))
    page = await client.get(f"/companies/{tree.direct['id']}")
    refused = await client.post(
        "/dashboard/settings",
        data={"_csrf_token": csrf_of(page.text), "low_seat_threshold": "1", "max_order_quantity": "10"},
    )
    assert refused.status_code == 403
    assert await PartnerSetting.count() == 0


def test_batch_label_names_no_id():
    batch = {
        "seats": 12,
        "starts_at": datetime(2026, 11, 23, tzinfo=UTC),
        "ends_at": datetime(2027, 11, 23, tzinfo=UTC),
    }
    assert wing_batches.batch_label(batch, NOW) == "12 seats, assigned 23 Nov 2026, ends 23 Nov 2027"
    assert wing_batches.batch_label({**batch, "seats": 1}, datetime(2028, 1, 1, tzinfo=UTC)) == (
        "1 seat, assigned 23 Nov 2026, ended 23 Nov 2027"
    )


async def test_ended_batch_shows_no_free_seats(tree):
    partner = await partner_of(tree)
    ended = await batch_ending(partner, tree.direct, 7, NOW - timedelta(days=3))
    listing = await wing_batches.batches_between(
        partner, "ends_at", NOW - timedelta(days=10), NOW + timedelta(days=1), NOW
    )
    (row,) = [b for b in listing.items if b["id"] == ended["id"]]
    assert row["free"] == 0 and not row["running"] and "batch" not in row["label"].lower()
    assert await Company.count() == 6
