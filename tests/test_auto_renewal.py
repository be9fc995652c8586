"""Automatic renewal, per customer, each engine: a batch due is renewed exactly
once, on its day, with the right quantity, its holders carried over; a customer
with automatic renewal off, or whose batch has ended, or who has (or had) a
subscription, is not renewed by it; with "Needs approval" nothing is provisioned
until Assign; a renewal run twice (at once, or again) renews once; managers are
told before and after; the customer's page sets it, for partner managers only."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from portal.domain.clock import utcnow
from portal.domain.dashboard import same_quantity
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.licences import auto_renewal, auto_renewal_tick
from portal.domain.orders import decisions
from portal.jobs import auto_renewal as auto_renewal_jobs
from portal.tables import AuditEntry, LicenceBatch, LicenceOrder, OutboxEmail
from portal.tables.billing import Subscription
from portal.tables.renewal import AutoRenewal
from tests import test_billing_renewal as billing
from tests.support import csrf_of, sign_in
from tests.test_billing_renewal import processor  # noqa: F401 (a fixture)
from tests.test_dashboard import NOW, YEAR, actors, batch_ending, learners
from tests.test_dashboard_figures import assert_exact
from tests.test_renewal_keeps_users import assert_one_seat_per_term, licence_ends

ENDS = NOW + timedelta(days=10)
DAY = ENDS - timedelta(days=7)  # the renewal day, 7 days before the end


async def turn_on(partner, company: dict, mode: str = "renew", days: int = 7, quantity: str = "same") -> None:
    await auto_renewal.save_setting(partner, company["id"], mode=mode, days_before=days, quantity=quantity, now=NOW)


async def renewals_of(batch: dict) -> list[dict]:
    return await LicenceOrder.select().where(LicenceOrder.renews_batch == batch["id"]).order_by(LicenceOrder.id)


async def new_batches() -> list[dict]:
    return await LicenceBatch.select().where(LicenceBatch.starts_at == ENDS).order_by(LicenceBatch.id)


async def test_a_due_batch_is_renewed_once_on_its_day_with_its_quantity_and_holders(tree):
    partner, _ = await actors(tree)
    holders = await learners(tree.direct, 2, "auto")
    old = await batch_ending(partner, tree.direct, 3, ENDS, holders)
    await turn_on(partner, tree.direct)

    # Not before its day.
    assert (await auto_renewal.renew_due(DAY - timedelta(seconds=1)))["renewed"] == 0
    assert await renewals_of(old) == []

    done = await auto_renewal.renew_due(DAY)
    assert (done["renewed"], done["placed"], done["moved"]) == (1, 0, 2)
    (new,) = await new_batches()
    assert (new["seats"], new["allocated"], new["ends_at"]) == (3, 2, ENDS + YEAR)
    (order,) = await renewals_of(old)
    assert (order["status"], order["quantity"], order["id"]) == ("assigned", 3, new["order"])
    assert await licence_ends(holders) == [ENDS + YEAR, ENDS + YEAR]
    # Once: the same instant again, the next day, the last day.
    for later in (DAY, DAY + timedelta(days=1), ENDS - timedelta(seconds=1)):
        assert (await auto_renewal.renew_due(later))["companies"] == 0
    assert len(await new_batches()) == 1
    assert await AuditEntry.count().where(AuditEntry.dedupe_key == f"auto_renewal:{old['id']}") == 1
    mails = await OutboxEmail.select().where(OutboxEmail.kind == "auto_renewed")
    assert [m["to_email"] for m in mails] == [tree.managers["direct"]["email"]]
    assert "renewed automatically" in mails[0]["subject"] and "The 2 users holding those keep" in mails[0]["body"]
    assert "1 seats are free" in mails[0]["body"]
    # The new batch's own renewal is a year away: not due.
    assert await auto_renewal.count_due(DAY + timedelta(days=2)) == 0
    await assert_one_seat_per_term()
    await assert_exact(partner, tree, DAY)


async def test_holders_renews_as_many_seats_as_users_hold_and_none_without_holders(tree):
    partner, _ = await actors(tree)
    held = await batch_ending(partner, tree.direct, 5, ENDS, await learners(tree.direct, 2, "hold"))
    empty = await batch_ending(partner, tree.north, 4, ENDS)
    for company in (tree.direct, tree.north):
        await turn_on(partner, company, quantity="holders", days=3)
    assert await auto_renewal.count_due(ENDS - timedelta(days=3)) == 1
    await auto_renewal.renew_due(ENDS - timedelta(days=3))
    (order,) = await renewals_of(held)
    assert order["quantity"] == 2
    (new,) = await new_batches()
    assert (new["seats"], new["allocated"]) == (2, 2)
    assert await renewals_of(empty) == []
    await assert_exact(partner, tree, ENDS - timedelta(days=3))


async def test_off_by_default_and_an_ended_batch_is_not_renewed(tree):
    partner, _ = await actors(tree)
    await batch_ending(partner, tree.north, 2, ENDS, await learners(tree.north, 2, "off"))
    lapsed = await batch_ending(partner, tree.direct, 2, NOW - timedelta(days=1), await learners(tree.direct, 1, "l"))
    await turn_on(partner, tree.direct, days=30)
    assert await auto_renewal.count_due(DAY) == 0
    assert (await auto_renewal.renew_due(DAY))["companies"] == 0
    assert await renewals_of(lapsed) == [] and await new_batches() == []
    # Switched off again: what was due is not renewed.
    await batch_ending(partner, tree.direct, 2, ENDS)
    await turn_on(partner, tree.direct, mode="off")
    assert (await auto_renewal.renew_due(DAY))["companies"] == 0


@pytest.mark.usefixtures("processor")
async def test_a_subscription_customer_running_cancelled_or_lapsed_is_left_to_billing(tree):
    partner, _ = await actors(tree)
    sub = await billing.subscribe(tree.direct, end=ENDS)
    plain = await batch_ending(partner, tree.direct, 2, ENDS)
    await turn_on(partner, tree.direct)
    for status in ("active", "ended", "lapsed"):
        await Subscription.update({Subscription.status: status}).where(Subscription.id == sub["id"])
        assert await auto_renewal.count_due(DAY) == 0, status
        assert (await auto_renewal.renew_due(DAY))["companies"] == 0, status
    assert await renewals_of(plain) == [] and await renewals_of({"id": sub["batch"]}) == []


async def test_needs_approval_places_a_renewal_order_and_provisions_nothing_until_assign(tree):
    partner, _ = await actors(tree)
    holders = await learners(tree.direct, 2, "approve")
    old = await batch_ending(partner, tree.direct, 2, ENDS, holders)
    await turn_on(partner, tree.direct, mode="approve")
    before = await licence_ends(holders)

    done = await auto_renewal.renew_due(DAY)
    assert (done["renewed"], done["placed"]) == (0, 1)
    (order,) = await renewals_of(old)
    assert (order["status"], order["quantity"]) == ("requested", 2)
    assert await new_batches() == [] and await licence_ends(holders) == before
    asked = await OutboxEmail.select().where(OutboxEmail.dedupe_key.like(f"order_requested:{order['id']}:%"))
    assert [m["to_email"] for m in asked] == [tree.managers["partner"]["email"]]
    assert "Requested Orders" in asked[0]["body"]
    told = await OutboxEmail.select().where(OutboxEmail.kind == "auto_renewal_placed")
    assert [m["to_email"] for m in told] == [tree.managers["direct"]["email"]]
    assert (await auto_renewal.renew_due(DAY + timedelta(days=1)))["companies"] == 0
    await assert_exact(partner, tree, DAY)

    batch = await decisions.assign_order(partner, order["id"], DAY + timedelta(days=1))
    assert (batch["starts_at"], batch["ends_at"], batch["allocated"]) == (ENDS, ENDS + YEAR, 2)
    assert await licence_ends(holders) == [ENDS + YEAR, ENDS + YEAR]
    assert len(await renewals_of(old)) == 1
    await assert_exact(partner, tree, DAY + timedelta(days=1))


async def test_an_order_placed_for_approval_is_in_requested_orders_and_assign_renews(client, tree):
    partner, _ = await actors(tree)
    now = utcnow()
    ends = now + timedelta(days=5)
    holders = await learners(tree.direct, 2, "click")
    old = await batch_ending(partner, tree.direct, 2, ends, holders)
    await turn_on(partner, tree.direct, mode="approve")
    await auto_renewal.renew_due(now)
    (order,) = await renewals_of(old)
    await sign_in(client, tree.email("partner"))
    page = await client.get("/licences/orders?status=requested")
    assert f"renewal of 2 seats ending {ends:%d %b %Y}" in page.text
    done = await client.post(
        f"/licences/orders/{order['id']}/assign", data={"_csrf_token": csrf_of(page.text), "confirm": "1"}
    )
    assert done.status_code in (302, 303)
    assert "2 users moved to it" in (await client.get(done.headers["location"])).text
    assert await licence_ends(holders) == [ends + YEAR, ends + YEAR]


async def test_a_declined_automatic_renewal_order_is_not_placed_again(tree):
    partner, _ = await actors(tree)
    old = await batch_ending(partner, tree.direct, 2, ENDS)
    await turn_on(partner, tree.direct, mode="approve")
    await auto_renewal.renew_due(DAY)
    (order,) = await renewals_of(old)
    await decisions.decline_order(partner, order["id"], "Renewing by hand this year", DAY)
    assert (await auto_renewal.renew_due(DAY + timedelta(days=1)))["companies"] == 0
    assert len(await renewals_of(old)) == 1


async def test_a_renewal_run_twice_at_once_renews_once(tree):
    """Two workers, a retried job and a manager's Renew same quantity at the same time."""
    partner, _ = await actors(tree)
    holders = await learners(tree.direct, 2, "race")
    old = await batch_ending(partner, tree.direct, 2, ENDS, holders)
    others = [await batch_ending(partner, tree.north, 1, ENDS - timedelta(hours=h + 1)) for h in range(3)]
    for company in (tree.direct, tree.north):
        await turn_on(partner, company)

    async def by_hand():
        try:
            return await same_quantity.renew_same_quantity(partner, old["id"], DAY)
        except ValidationFailed as refused:
            return refused

    await asyncio.gather(
        auto_renewal.renew_due(DAY),
        auto_renewal.renew_due(DAY),
        auto_renewal.renew_due(DAY, limit=1),
        by_hand(),
        auto_renewal_jobs.auto_renew_chunks({"job_id": None}),
    )
    await auto_renewal.renew_due(DAY)
    for batch in (old, *others):
        assert [o["status"] for o in await renewals_of(batch)] == ["assigned"], batch["id"]
    assert await LicenceBatch.count().where(LicenceBatch.starts_at == ENDS) == 1
    assert await licence_ends(holders) == [ENDS + YEAR, ENDS + YEAR]
    await assert_one_seat_per_term()


async def test_managers_are_told_a_week_before_the_day_and_once(tree):
    partner, _ = await actors(tree)
    await batch_ending(partner, tree.direct, 3, ENDS, await learners(tree.direct, 2, "told"))
    await turn_on(partner, tree.direct, quantity="holders")
    week_before = DAY - auto_renewal.NOTICE_AHEAD
    assert await auto_renewal.notify_due(week_before - timedelta(seconds=1)) == 0
    assert await auto_renewal.notify_due(week_before) == 1
    assert await auto_renewal.notify_due(week_before + timedelta(days=1)) == 0
    (notice,) = await OutboxEmail.select().where(OutboxEmail.kind == "auto_renewal_notice")
    assert notice["to_email"] == tree.managers["direct"]["email"]
    assert f"renews automatically on {DAY:%d %B %Y}" in notice["subject"]
    assert "as many seats as users hold then (2 now)" in notice["body"]
    # On the day the renewal itself says it was done; no notice then.
    assert await auto_renewal.notify_due(DAY) == 0


async def test_the_in_process_tick_notifies_and_renews(tree, monkeypatch):
    partner, _ = await actors(tree)
    old = await batch_ending(partner, tree.direct, 2, ENDS)
    await turn_on(partner, tree.direct)
    monkeypatch.setattr(auto_renewal_jobs, "utcnow", lambda: DAY)
    counts = await auto_renewal_jobs.auto_renewal_tick({"job_id": None})
    assert counts["renewed"] == 1
    assert [o["status"] for o in await renewals_of(old)] == ["assigned"]


async def test_the_tick_with_workers_queues_chunk_jobs_for_what_is_due_and_renews_nothing_itself(tree):
    partner, _ = await actors(tree)
    old = await batch_ending(partner, tree.direct, 2, ENDS)
    await turn_on(partner, tree.direct)
    queued: list[int] = []

    async def queue_chunks(count: int) -> None:
        queued.append(count)

    counts = await auto_renewal_tick.run(DAY, queue_chunks)
    assert queued == [1] and counts["jobs_queued"] == 1
    assert await renewals_of(old) == []
    assert (await auto_renewal_tick.renew_chunks(DAY))["renewed"] == 1
    assert [o["status"] for o in await renewals_of(old)] == ["assigned"]


async def test_only_a_partner_manager_sets_it_for_a_customer_with_a_valid_choice(tree):
    partner, customer = await actors(tree)
    with pytest.raises(PermissionDenied):
        await turn_on(customer, tree.direct)
    with pytest.raises(ValidationFailed, match="for a customer"):
        await turn_on(partner, tree.partner)
    with pytest.raises(ValidationFailed) as refused:
        await auto_renewal.save_setting(partner, tree.direct["id"], mode="x", days_before=5, quantity="y", now=NOW)
    assert set(refused.value.errors) == {"mode", "days_before", "quantity"}
    assert await AutoRenewal.count() == 0
    await turn_on(partner, tree.direct, mode="approve", days=14, quantity="holders")
    _, setting = await auto_renewal.get_setting(customer, tree.direct["id"])
    assert (setting.mode, setting.days_before, setting.quantity) == ("approve", 14, "holders")
    entry = await AuditEntry.select().where(AuditEntry.action == "auto_renewal.set").first()
    assert entry["company"] == tree.direct["id"] and json.loads(entry["detail"])["mode"] == "approve"


async def test_the_customers_page_sets_it_and_says_what_is_wrong(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get(f"/companies/{tree.direct['id']}")
    assert f'hx-get="/companies/{tree.direct["id"]}/auto-renewal"' in page.text
    section = await client.get(f"/companies/{tree.direct['id']}/auto-renewal")
    assert "Automatic renewal" in section.text and "Off: batches are renewed by hand" in section.text
    token = csrf_of(section.text)
    bad = await client.post(
        f"/companies/{tree.direct['id']}/auto-renewal",
        data={"_csrf_token": token, "mode": "renew", "days_before": "99", "quantity": "same"},
    )
    assert bad.status_code == 400 and "Choose how many days before a batch ends" in bad.text
    assert await AutoRenewal.count() == 0
    saved = await client.post(
        f"/companies/{tree.direct['id']}/auto-renewal",
        data={"_csrf_token": token, "mode": "renew", "days_before": "14", "quantity": "holders"},
    )
    assert saved.status_code == 303 and saved.headers["location"].endswith("#auto-renewal")
    shown = await client.get(f"/companies/{tree.direct['id']}/auto-renewal")
    assert "Each batch is renewed 14 days before it ends, with as many seats as users hold then" in shown.text
    client.cookies.clear()
    await sign_in(client, tree.email("direct"))
    theirs = await client.get(f"/companies/{tree.direct['id']}/auto-renewal")
    assert "Each batch is renewed 14 days" in theirs.text and "Save automatic renewal" not in theirs.text
