"""The job path end to end: a sign-in is recorded in the audit log by a task,
through a real arq worker on Redis, or the in-process runner without Redis."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from arq.connections import RedisSettings, create_pool

from portal.jobs.queue import ArqQueue, InProcessQueue
from portal.jobs.tasks import FUNCTIONS
from portal.tables import AuditEntry
from tests import support
from tests.factories import T0
from tests.support import sign_in

REDIS_URL = os.environ["PORTAL_TEST_REDIS"]  # the run's own server (tests/redis_server.py)


async def run_burst_worker() -> None:
    await support.run_burst_worker(FUNCTIONS, REDIS_URL)


async def sign_in_entries() -> list[dict]:
    return await AuditEntry.select(AuditEntry.actor, AuditEntry.at).where(AuditEntry.action == "sign_in")


async def test_sign_in_is_recorded_by_the_configured_queue(app, client, tree):
    await sign_in(client, tree.email("partner"))
    if isinstance(app.state.jobs, InProcessQueue):
        await app.state.jobs.drain()
    else:
        assert isinstance(app.state.jobs, ArqQueue)
        assert await sign_in_entries() == []  # nothing until a worker runs the job
        await run_burst_worker()
    assert [e["actor"] for e in await sign_in_entries()] == [tree.managers["partner"]["id"]]


@pytest.mark.redis
async def test_arq_worker_runs_a_queued_job_once_even_if_queued_twice(tree):
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    await pool.flushdb()  # on SQLite runs clean_state does not flush this database
    queue = ArqQueue(pool)
    user_id, company_id = tree.managers["direct"]["id"], tree.direct["id"]
    await queue.enqueue("record_sign_in", user_id, company_id, T0, job_id="sign-in:test")
    await queue.enqueue("record_sign_in", user_id, company_id, T0, job_id="sign-in:test")  # deduplicated
    # A second job for the same sign-in (a retry after a worker died) writes nothing more.
    await queue.enqueue("record_sign_in", user_id, company_id, T0, job_id="sign-in:retry")
    await queue.enqueue("record_sign_in", user_id, company_id, T0 + timedelta(hours=1))
    await run_burst_worker()
    await queue.close()
    assert sorted(e["at"] for e in await sign_in_entries()) == [T0, T0 + timedelta(hours=1)]


async def test_in_process_queue_runs_the_same_task(tree):
    queue = InProcessQueue()
    await queue.enqueue("record_sign_in", tree.managers["north"]["id"], tree.north["id"], T0)
    await queue.drain()
    assert [e["actor"] for e in await sign_in_entries()] == [tree.managers["north"]["id"]]


def test_every_job_of_the_worker_is_logged_and_retried():
    """Jobs are wrapped by logged_job where they are defined; one left bare would
    fail silently and be dropped on a transient error."""
    from portal.jobs.retry import is_logged
    from portal.jobs.worker import WorkerSettings

    jobs = [*WorkerSettings.functions, *(cron.coroutine for cron in WorkerSettings.cron_jobs)]
    names = {fn.__name__ for fn in jobs}
    assert {"record_sign_in", "apply_import", "deliver_outbox", "sweep_expiry"} <= names
    assert [fn.__name__ for fn in jobs if not is_logged(fn)] == []
