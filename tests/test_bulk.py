"""Bulk actions, each engine: a confirmed selection becomes one run whose items
are applied once each through the rules that own them (Renew same quantity,
Assign, Select All, automatic renewal), each audited; what cannot be done is
recorded with why; the same confirmation ten times at once starts one run; a
run over 50 customers whose worker dies mid-run finishes each customer once,
and its summary matches the database."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import timedelta

from portal import db
from portal.domain.bulk import apply, runs
from portal.domain.bulk.selection import Selection, plan
from portal.domain.companies import insert_company
from portal.domain.dashboard import figures
from portal.domain.licences import auto_renewal
from portal.domain.orders import decisions, requests
from portal.tables import AuditEntry, LicenceBatch, LicenceOrder
from portal.tables.bulk import BulkItem, BulkRun
from portal.tables.renewal import AutoRenewal
from tests.factories import add_user
from tests.test_dashboard import NOW, YEAR, actors, batch_ending, learners
from tests.test_dashboard_figures import assert_exact
from tests.test_renewal_keeps_users import assert_one_seat_per_term, licence_ends

ENDS = NOW + timedelta(days=10)


async def renewals_of(batch: dict) -> list[dict]:
    return await LicenceOrder.select().where(LicenceOrder.renews_batch == batch["id"])


async def customer(tree, name: str) -> dict:
    async with db.write_transaction():
        return await insert_company(name, "customer", tree.partner, NOW - YEAR)


async def run_all(run_id: int) -> None:
    await apply.process(run_id, NOW)
    assert await apply.finish(run_id, NOW)


async def items_of(run_id: int) -> dict[tuple[int, int | None], dict]:
    rows = await BulkItem.select().where(BulkItem.run == run_id)
    return {(r["company"], r["target"]): r for r in rows}


async def test_renew_selected_renews_each_batch_ending_soon_once_with_its_holders(tree):
    partner, _ = await actors(tree)
    holders = await learners(tree.direct, 2, "h")
    direct = await batch_ending(partner, tree.direct, 3, ENDS, holders)
    north = await batch_ending(partner, tree.north, 4, ENDS + timedelta(days=2))
    await batch_ending(partner, tree.north, 5, NOW + timedelta(days=90))  # not ending soon
    selection = Selection("renew", companies=(tree.direct["id"], tree.north["id"]))

    planned = await plan(partner, selection, NOW)
    assert planned.said == "Renew 2 batches for 2 customers: 7 seats"
    started = await runs.start_run(partner, selection, "key-1", NOW)
    assert started.created and started.queued == 2
    await run_all(started.run_id)

    items = await items_of(started.run_id)
    assert items[(tree.direct["id"], direct["id"])]["status"] == "done"
    assert items[(tree.north["id"], north["id"])]["status"] == "done"
    assert "Renewed: 3 ×" in items[(tree.direct["id"], direct["id"])]["outcome"]
    assert "2 users moved" in items[(tree.direct["id"], direct["id"])]["outcome"]
    assert await licence_ends(holders) == [ENDS + YEAR, ENDS + YEAR]
    assert [len(await renewals_of(b)) for b in (direct, north)] == [1, 1]
    run = await BulkRun.select().where(BulkRun.id == started.run_id).first()
    assert run["status"] == "done" and run["said"] == planned.said
    # Audited one by one.
    assert await AuditEntry.count().where(AuditEntry.action == "bulk.renew") == 2

    # Running it twice changes nothing twice: a new confirmation finds nothing to renew.
    again = await runs.start_run(partner, selection, "key-2", NOW)
    await run_all(again.run_id)
    second = await items_of(again.run_id)
    assert {r["status"] for r in second.values()} == {"skipped"}
    assert all("Nothing to renew" in r["outcome"] for r in second.values())
    assert [len(await renewals_of(b)) for b in (direct, north)] == [1, 1]
    await assert_one_seat_per_term()
    await assert_exact(partner, tree, NOW)


async def test_a_ticked_batch_already_renewed_meanwhile_is_skipped_with_why(tree):
    partner, _ = await actors(tree)
    batch = await batch_ending(partner, tree.direct, 3, ENDS)
    started = await runs.start_run(partner, Selection("renew", batches=(batch["id"],)), "k", NOW)
    # Renewed by hand between the confirmation and the job.
    from portal.domain.dashboard import same_quantity

    await same_quantity.renew_same_quantity(partner, batch["id"], NOW)
    await run_all(started.run_id)
    (item,) = (await items_of(started.run_id)).values()
    assert item["status"] == "skipped" and "already renewed" in item["outcome"]
    assert len(await renewals_of(batch)) == 1


async def test_the_same_confirmation_ten_times_at_once_starts_one_run(tree):
    partner, _ = await actors(tree)
    await batch_ending(partner, tree.direct, 3, ENDS)
    selection = Selection("renew", companies=(tree.direct["id"],))
    started = await asyncio.gather(*(runs.start_run(partner, selection, "same-key", NOW) for _ in range(10)))
    assert len({s.run_id for s in started}) == 1
    assert sum(s.created for s in started) == 1
    assert await BulkRun.count() == 1 and await BulkItem.count() == 1
    # Ten jobs at once apply it once.
    await asyncio.gather(*(apply.process(started[0].run_id, NOW) for _ in range(10)))
    assert await LicenceOrder.count().where(LicenceOrder.renews_batch.is_not_null()) == 1


async def test_assign_selected_assigns_waiting_orders_and_says_why_not_for_a_cancelled_one(tree):
    partner, direct_manager = await actors(tree)
    waiting = await requests.request_order(partner, tree.direct["id"], 4, None, "", NOW)
    cancelled = await requests.request_order(partner, tree.north["id"], 2, None, "", NOW)
    selection = Selection("assign", orders=(waiting["id"], cancelled["id"]))
    assert (await plan(partner, selection, NOW)).said == "Assign 2 orders for 2 customers: 6 seats"
    started = await runs.start_run(partner, selection, "k", NOW)
    await decisions.cancel_order(partner, cancelled["id"], NOW)
    await run_all(started.run_id)
    items = await items_of(started.run_id)
    assert items[(tree.direct["id"], waiting["id"])]["status"] == "done"
    assert items[(tree.north["id"], cancelled["id"])]["status"] == "skipped"
    assert "cancelled" in items[(tree.north["id"], cancelled["id"])]["outcome"]
    assert await LicenceBatch.count().where(LicenceBatch.order == waiting["id"]) == 1
    assert await LicenceBatch.count().where(LicenceBatch.order == cancelled["id"]) == 0


async def test_assign_over_the_partners_limit_is_skipped_and_nothing_is_written(tree):
    """An order's own refusal halfway (its renewal's assign refused) leaves nothing behind."""
    partner, _ = await actors(tree)
    batch = await batch_ending(partner, tree.direct, 3, ENDS)
    first = await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW, renews_batch=batch["id"])
    second = await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW, renews_batch=batch["id"])
    started = await runs.start_run(partner, Selection("assign", orders=(first["id"], second["id"])), "k", NOW)
    await run_all(started.run_id)
    items = await items_of(started.run_id)
    assert items[(tree.direct["id"], first["id"])]["status"] == "done"
    assert items[(tree.direct["id"], second["id"])]["status"] == "skipped"
    assert "already renewed" in items[(tree.direct["id"], second["id"])]["outcome"]
    assert await LicenceBatch.count().where(LicenceBatch.order == second["id"]) == 0


async def test_allocate_free_seats_selects_all_where_seats_are_free_and_users_wait(tree):
    partner, _ = await actors(tree)
    expired = await learners(tree.direct, 3, "gone")
    await batch_ending(partner, tree.direct, 3, NOW - timedelta(days=5), expired)
    running = await batch_ending(partner, tree.direct, 2, NOW + timedelta(days=200))
    await learners(tree.north, 2, "none")  # waiting, but no seats
    selection = Selection("allocate", companies=(tree.direct["id"], tree.north["id"]))
    planned = await plan(partner, selection, NOW)
    assert planned.said == "Allocate free seats at 1 customer: up to 2 seats to users waiting"
    started = await runs.start_run(partner, selection, "k", NOW)
    await run_all(started.run_id)
    items = await items_of(started.run_id)
    assert items[(tree.direct["id"], None)]["status"] == "done"
    assert items[(tree.direct["id"], None)]["outcome"].startswith("Allocated 2 seats; ")
    assert items[(tree.north["id"], None)] | {} and items[(tree.north["id"], None)]["outcome"] == "No free seats."
    held = await LicenceBatch.select(LicenceBatch.allocated).where(LicenceBatch.id == running["id"]).first()
    assert held["allocated"] == 2
    # Twice: no free seat is left, nothing more is given.
    again = await runs.start_run(partner, selection, "k2", NOW)
    await run_all(again.run_id)
    assert {r["status"] for r in (await items_of(again.run_id)).values()} == {"skipped"}
    await assert_exact(partner, tree, NOW)


async def test_turn_on_automatic_renewal_for_each_customer_once(tree):
    partner, _ = await actors(tree)
    await auto_renewal.save_setting(partner, tree.north["id"], mode="renew", days_before=3, quantity="same", now=NOW)
    selection = Selection("auto_renew", companies=(tree.direct["id"], tree.north["id"]))
    started = await runs.start_run(partner, selection, "k", NOW)
    await run_all(started.run_id)
    items = await items_of(started.run_id)
    assert items[(tree.direct["id"], None)]["status"] == "done"
    assert items[(tree.north["id"], None)]["status"] == "skipped"
    assert items[(tree.north["id"], None)]["outcome"].startswith("Already on")
    rows = {r["company"]: r for r in await AutoRenewal.select()}
    assert (rows[tree.direct["id"]]["mode"], rows[tree.north["id"]]["days_before"]) == ("renew", 3)


async def test_every_match_of_the_search_covers_every_page_and_only_the_wing(tree):
    partner, _ = await actors(tree)
    extra = [(await customer(tree, f"Zeta {n:02d}"))["id"] for n in range(30)]
    query = figures.CustomerQuery(q="Zeta")
    ids = await figures.customer_ids(partner, query, NOW)
    assert sorted(ids) == sorted(extra)
    planned = await plan(partner, Selection("auto_renew", every_match=True, query=query), NOW)
    assert planned.customers == 30 and planned.said.startswith("Turn on automatic renewal for 30 customers")
    # Another partner's customer ticked by hand is not under the wing: left out.
    other = await plan(partner, Selection("auto_renew", companies=(tree.other_customer["id"],)), NOW)
    assert other.items == []


async def test_renew_selected_for_every_match_renews_past_the_page_the_table_shows(tree):
    partner, _ = await actors(tree)
    batches = []
    for n in range(30):
        company = await customer(tree, f"Paged {n:02d}")
        batches.append(await batch_ending(partner, company, 2, ENDS + timedelta(minutes=n)))
    await customer(tree, "Unrelated")
    query = figures.CustomerQuery(q="Paged", sort="name", per_page=25)
    shown = (await figures.customer_figures(partner, query, NOW)).page
    assert len(shown.items) == 25 and shown.total == 30  # the table shows a page of them
    selection = Selection("renew", every_match=True, query=query)
    planned = await plan(partner, selection, NOW)
    assert planned.said == "Renew 30 batches for 30 customers: 60 seats"
    # The query's position is no part of what "every match" covers.
    assert (
        await plan(partner, replace(selection, query=replace(query, after=shown.next_after)), NOW)
    ).said == planned.said
    started = await runs.start_run(partner, selection, "every-page", NOW)
    await run_all(started.run_id)
    assert [len(await renewals_of(b)) for b in batches] == [1] * 30


async def test_a_run_over_50_customers_whose_worker_dies_mid_run_finishes_each_once(tree, monkeypatch):
    partner, _ = await actors(tree)
    # Chunks of 5 (of the 200 a transaction renews together), so the job dies between and inside chunks.
    monkeypatch.setattr(apply, "RENEW_CHUNK", 5)
    batches = []
    for n in range(50):
        company = await customer(tree, f"Bulk {n:02d}")
        await add_user(company, f"m{n}@bulk.example")
        holders = await learners(company, 1, f"b{n}-")
        batches.append(await batch_ending(partner, company, 2, ENDS + timedelta(minutes=n), holders))
    ids = tuple(b["company"] for b in batches)
    started = await runs.start_run(partner, Selection("renew", companies=ids), "k", NOW)

    # A worker dies mid-run: its job is cancelled in the middle of an item.
    job = asyncio.create_task(apply.process(started.run_id, NOW))
    while await apply.queued(started.run_id) > 35:
        await asyncio.sleep(0.01)
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
    assert 0 < await apply.queued(started.run_id) < 50
    # Its job runs again (arq's retry, another worker), twice at once for good measure.
    await asyncio.gather(apply.process(started.run_id, NOW), apply.process(started.run_id, NOW))
    assert await apply.finish(started.run_id, NOW)

    # Each customer once, and the summary says what the database holds.
    summary = await runs.summary(started.run_id)
    assert len(summary) == 50
    for row, batch in zip(
        sorted(summary, key=lambda c: c["id"]), sorted(batches, key=lambda b: b["company"]), strict=True
    ):
        (item,) = row["items"]
        orders = await renewals_of(batch)
        assert item["status"] == "done" and len(orders) == 1 and orders[0]["status"] == "assigned"
        new = await LicenceBatch.select().where(LicenceBatch.order == orders[0]["id"]).first()
        assert f"until {new['ends_at']:%d %b %Y}".replace("until", "ending") in item["outcome"]
    progress = await runs.progress(started.run_id)
    assert (progress.total, progress.done, progress.running) == (50, 50, False)
    assert await AuditEntry.count().where(AuditEntry.action == "bulk.renew") == 50
    assert await AuditEntry.count().where(AuditEntry.action == "order.assign") == 100  # 50 first + 50 renewals
    await assert_one_seat_per_term()


async def test_under_arq_a_long_run_hands_over_to_its_continuation_and_finishes(tree, monkeypatch):
    """arq cancels a job after its timeout: a job hands the rest of its run to a new one before."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from portal.jobs import bulk as bulk_jobs
    from tests.support import run_burst_worker

    partner, _ = await actors(tree)
    monkeypatch.setattr(bulk_jobs, "BUDGET_S", 0.0)
    monkeypatch.setattr(apply, "CHUNK", 1)
    monkeypatch.setattr(apply, "PER_CALL", 1)
    selection = Selection("auto_renew", companies=(tree.direct["id"], tree.north["id"]))
    started = await runs.start_run(partner, selection, "k", NOW)
    pool = await create_pool(RedisSettings.from_dsn(os.environ["PORTAL_TEST_REDIS"]))
    try:
        await pool.enqueue_job("run_bulk", started.run_id, 0, _job_id=bulk_jobs.job_id(started.run_id, 0))
        worker = await run_burst_worker(bulk_jobs.BULK_FUNCTIONS, redis_pool=pool)
    finally:
        await pool.aclose()
    # One item per job, each over its budget, then a last one that finds the run done.
    assert worker.jobs_complete == 3
    assert {r["status"] for r in (await items_of(started.run_id)).values()} == {"done"}
    assert (await BulkRun.select(BulkRun.status).where(BulkRun.id == started.run_id).first())["status"] == "done"


async def test_renew_many_applies_the_single_renewals_rule_to_each_batch_once(tree):
    """One chunk mixing what renews, a renewal request waiting (assigned, not
    doubled) and a batch over the partner's largest order (refused with the single
    path's words, nothing written); run again, it renews nothing twice."""
    from portal.domain import partner_settings
    from portal.domain.dashboard import same_quantity
    from portal.tables import OutboxEmail

    partner, _ = await actors(tree)
    holders = await learners(tree.direct, 2, "h")
    plain = await batch_ending(partner, tree.direct, 3, ENDS, holders)
    asked = await batch_ending(partner, tree.north, 4, ENDS + timedelta(days=1))
    request = await requests.request_order(partner, tree.north["id"], 4, None, "", NOW, renews_batch=asked["id"])
    too_big = await batch_ending(partner, tree.north, 9, ENDS + timedelta(days=2))
    await partner_settings.save(partner, tree.partner["id"], max_order_quantity=8, low_seat_threshold=1, now=NOW)
    ids = [plain["id"], asked["id"], too_big["id"]]
    assigns_before = await AuditEntry.count().where(AuditEntry.action == "order.assign")

    done = await same_quantity.renew_many(partner, ids, NOW)

    assert isinstance(done[plain["id"]], same_quantity.Renewed)
    assert done[plain["id"]].batch["term"].moving == 2
    assert done[plain["id"]].batch["starts_at"] == ENDS and done[plain["id"]].batch["ends_at"] == ENDS + YEAR
    assert done[asked["id"]].order["id"] == request["id"]  # the waiting request, assigned
    assert done[too_big["id"]] == requests.over_limit(9, 8)
    assert await licence_ends(holders) == [ENDS + YEAR, ENDS + YEAR]
    assert [len(await renewals_of(b)) for b in (plain, asked, too_big)] == [1, 1, 0]
    assert await AuditEntry.count().where(AuditEntry.action == "order.assign") == assigns_before + 2
    mails = await OutboxEmail.count().where(OutboxEmail.kind == "order_assigned")

    again = await same_quantity.renew_many(partner, ids, NOW)
    assert all(isinstance(outcome, str) and "already renewed" in outcome for outcome in list(again.values())[:2])
    assert [len(await renewals_of(b)) for b in (plain, asked, too_big)] == [1, 1, 0]
    assert await OutboxEmail.count().where(OutboxEmail.kind == "order_assigned") == mails
    assert await AuditEntry.count().where(AuditEntry.action == "order.assign") == assigns_before + 2
    await assert_one_seat_per_term()
    await assert_exact(partner, tree, NOW)


async def test_a_run_whose_jobs_died_with_their_worker_is_taken_up_by_the_minutely_resume(tree):
    """SIGKILL takes a worker's jobs with it (arq retries them only after their
    timeout): the resume job queues one more for each run with items waiting."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from portal.jobs import bulk as bulk_jobs
    from tests.support import run_burst_worker

    partner, _ = await actors(tree)
    # Automatic renewal: the job runs on the wall clock, which the test's batches are not on.
    started = await runs.start_run(partner, Selection("auto_renew", companies=(tree.direct["id"],)), "k", NOW)
    # Its jobs were never run (their worker died): nothing but the resume can finish it.
    pool = await create_pool(RedisSettings.from_dsn(os.environ["PORTAL_TEST_REDIS"]))
    try:
        assert await bulk_jobs.resume_bulk_runs({"redis": pool}) == {"resumed": 1}
        await run_burst_worker(bulk_jobs.BULK_FUNCTIONS, redis_pool=pool)
    finally:
        await pool.aclose()
    (item,) = (await items_of(started.run_id)).values()
    assert item["status"] == "done"
    assert await AutoRenewal.count().where((AutoRenewal.company == tree.direct["id"]) & (AutoRenewal.mode == "renew"))
    assert (await BulkRun.select(BulkRun.status).where(BulkRun.id == started.run_id).first())["status"] == "done"
    assert await bulk_jobs.resume_bulk_runs({"redis": None}) == {"resumed": 0}
