"""Bulk actions on the pages, each engine: the Admin Dashboard's customer table,
"Ending in the next 30 days" and Requested Orders offer them; the confirmation
page says what will change; confirming (ten times at once) starts one run as a
job (arq on Redis, in-process without), whose page shows a progress bar and then
the summary per customer; only partner managers, only their own runs."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta

import httpx

from portal.domain.clock import utcnow
from portal.domain.orders import requests
from portal.jobs import queue as job_queue
from portal.jobs.bulk import BULK_FUNCTIONS
from portal.tables import LicenceOrder
from portal.tables.bulk import BulkItem, BulkRun
from tests.support import csrf_of, run_burst_worker, sign_in
from tests.test_dashboard import actors, batch_ending, learners


async def run_bulk_jobs(app) -> None:
    if os.environ.get("REDIS_URL"):
        await run_burst_worker(BULK_FUNCTIONS, os.environ["REDIS_URL"])
    else:
        await app.state.jobs.drain()


def confirmation(html: str) -> dict[str, list[str]]:
    """What the confirmation's button posts: its hidden inputs and the CSRF token."""
    data: dict[str, list[str]] = {"_csrf_token": [csrf_of(html)]}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html):
        if name != "_csrf_token":
            data.setdefault(name, []).append(value)
    return data


async def test_renew_selected_from_the_customer_table_says_before_and_after(app, client, tree, monkeypatch):
    monkeypatch.setitem(job_queue.TASKS, "run_bulk", BULK_FUNCTIONS[0])
    now = utcnow()
    partner, _ = await actors(tree)
    holders = await learners(tree.direct, 2, "web")
    old = await batch_ending(partner, tree.direct, 3, now + timedelta(days=6), holders)
    await sign_in(client, tree.email("partner"))

    page = await client.get("/dashboard")
    assert 'form="bulk-customers"' in page.text and 'id="bulk-customers"' in page.text
    assert f'name="batch" value="{old["id"]}" form="bulk-ending"' in page.text
    confirm = await client.get(
        f"/bulk/confirm?scope=customers&action=renew&company={tree.direct['id']}&company={tree.north['id']}"
    )
    assert confirm.status_code == 200
    assert "Renew 1 batch for 1 customer: 3 seats" in confirm.text
    assert "Nothing to renew" in confirm.text  # North: nothing ends soon, said before
    data = confirmation(confirm.text)

    answers = await asyncio.gather(*(client.post("/bulk/", data=data) for _ in range(10)))
    assert {a.status_code for a in answers} == {303}
    assert len({a.headers["location"] for a in answers}) == 1
    assert await BulkRun.count() == 1
    location = answers[0].headers["location"]

    await run_bulk_jobs(app)
    done = await client.get(location)
    assert 'data-testid="bulk-summary"' in done.text
    assert "Renewed: 3 ×" in done.text and "Nothing to renew" in done.text
    assert await LicenceOrder.count().where(LicenceOrder.renews_batch == old["id"]) == 1
    # The fragment the progress bar polls answers the same summary.
    fragment = await client.get(location + "/progress", headers={"HX-Request": "true", "HX-Target": "bulk-progress"})
    assert "<html" not in fragment.text and "bulk-summary" in fragment.text


async def test_the_progress_bar_polls_while_items_wait(client, tree):
    partner, _ = await actors(tree)
    await batch_ending(partner, tree.direct, 3, utcnow() + timedelta(days=6))
    await sign_in(client, tree.email("partner"))
    confirm = await client.get(f"/bulk/confirm?action=renew&company={tree.direct['id']}")
    # Not queued to any worker: the run waits.
    from portal.domain.bulk import runs
    from portal.domain.bulk.selection import Selection

    started = await runs.start_run(partner, Selection("renew", companies=(tree.direct["id"],)), "k", utcnow())
    page = await client.get(f"/bulk/{started.run_id}")
    assert "<progress" in page.text and 'hx-trigger="load delay:500ms"' in page.text
    assert "Working: 0 of 1" in page.text
    assert confirm.status_code == 200


async def test_assign_selected_from_requested_orders_covers_every_match_of_the_filters(app, client, tree, monkeypatch):
    monkeypatch.setitem(job_queue.TASKS, "run_bulk", BULK_FUNCTIONS[0])
    partner, _ = await actors(tree)
    now = utcnow()
    orders = [await requests.request_order(partner, tree.direct["id"], 2, None, "", now) for _ in range(3)]
    other = await requests.request_order(partner, tree.north["id"], 5, None, "", now)
    await sign_in(client, tree.email("partner"))
    listing = await client.get(f"/licences/orders?customer={tree.direct['id']}")
    assert 'id="bulk-orders"' in listing.text and f'name="order" value="{orders[0]["id"]}"' in listing.text
    confirm = await client.get(
        f"/bulk/confirm?action=assign&scope=orders&every_match=1&customer={tree.direct['id']}&status=requested"
    )
    assert "Assign 3 orders for 1 customer: 6 seats" in confirm.text
    data = confirmation(confirm.text)
    started = await client.post("/bulk/", data=data)
    await run_bulk_jobs(app)
    summary = await client.get(started.headers["location"])
    assert summary.text.count('data-status="done"') == 3
    assigned = await LicenceOrder.select(LicenceOrder.id).where(LicenceOrder.status == "assigned")
    assert sorted(o["id"] for o in assigned) == sorted(o["id"] for o in orders)
    assert (await LicenceOrder.select().where(LicenceOrder.id == other["id"]).first())["status"] == "requested"


async def test_an_empty_selection_is_refused_on_the_page_and_others_runs_are_not_found(client, tree):
    partner, _ = await actors(tree)
    await sign_in(client, tree.email("partner"))
    empty = await client.get("/bulk/confirm?action=renew")
    assert empty.status_code == 400 and "Select at least one customer" in empty.text
    from portal.domain.bulk import runs
    from portal.domain.bulk.selection import Selection

    started = await runs.start_run(partner, Selection("auto_renew", companies=(tree.direct["id"],)), "k", utcnow())
    other = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with other:
        await sign_in(other, tree.email("other"))
        assert (await other.get(f"/bulk/{started.run_id}")).status_code == 404
        assert (await other.get(f"/bulk/{started.run_id}/progress")).status_code == 404
        opened = await other.get("/dashboard")
        resumed = await other.post(f"/bulk/{started.run_id}/resume", data={"_csrf_token": csrf_of(opened.text)})
        assert resumed.status_code == 404
        await sign_in(other, tree.email("direct"))
        assert (await other.get(f"/bulk/{started.run_id}")).status_code in (403, 404)
        assert (await other.get("/bulk/confirm?action=renew")).status_code == 403
    assert await BulkItem.count() == 1
