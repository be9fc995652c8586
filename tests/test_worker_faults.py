"""Faults under a running worker: Redis stopped and started again, PostgreSQL
dropping the job's connection, a task failing once on a transient error. The
worker lives through them and the jobs still run, once each.

Each test that stops Redis starts a redis-server of its own (tests/redis_server.py),
so the run's shared server is never touched."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func

from portal import db
from portal.jobs import retry
from portal.jobs import worker as worker_module
from portal.jobs.retry import is_transient, logged_job
from portal.jobs.worker import Supervisor, WorkerSettings, new_worker
from portal.tables import AuditEntry
from tests.factories import T0
from tests.redis_server import RedisServer
from tests.support import run_burst_worker

pytestmark = pytest.mark.redis
DEADLINE = 30.0  # seconds to wait for something that should happen much sooner


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until `check()` is true; fail (not hang) if it never becomes so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def sign_ins() -> list:
    return sorted(e["at"] for e in await AuditEntry.select(AuditEntry.at).where(AuditEntry.action == "sign_in"))


@pytest.fixture
def quick_retries(monkeypatch):
    """Retry after a tenth of a second instead of 2, 4, 8 … seconds."""
    monkeypatch.setattr(retry, "backoff", lambda job_try: 0.1)


def redis_settings(server: RedisServer) -> RedisSettings:
    settings = RedisSettings.from_dsn(server.url)
    settings.conn_retries = 0  # the supervisor does the retrying
    return settings


def supervisor_for(server: RedisServer) -> Supervisor:
    settings = redis_settings(server)
    return Supervisor(lambda: new_worker(redis_settings=settings, poll_delay=0.05), first_delay=0.05, max_delay=0.2)


async def enqueue(server: RedisServer, *args, **kwargs) -> None:
    pool = await create_pool(redis_settings(server))
    try:
        await pool.enqueue_job("record_sign_in", *args, **kwargs)
    finally:
        await pool.aclose()


async def test_the_worker_survives_redis_going_away_and_runs_jobs_when_it_is_back(tree, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="portal.jobs")
    user_id, company_id = tree.managers["direct"]["id"], tree.direct["id"]
    server = RedisServer(tmp_path / "redis").start()
    supervisor = supervisor_for(server)
    running = asyncio.create_task(supervisor.run())
    try:
        await asyncio.wait_for(supervisor.connected.wait(), DEADLINE)
        await enqueue(server, user_id, company_id, T0)
        await eventually(lambda: _equals(sign_ins, [T0]), "the first job ran")

        server.stop()  # under the running worker
        await eventually(lambda: _true(supervisor.losses == 1), "the worker noticed Redis was gone")
        await asyncio.sleep(0.3)  # a few reconnection attempts against nothing
        assert not running.done(), "the worker died with Redis"

        server = RedisServer(tmp_path / "redis", port=server.port).start()  # a fresh, empty Redis
        await eventually(lambda: _true(supervisor.connections == 2), "the worker reconnected")
        await enqueue(server, user_id, company_id, T0 + timedelta(hours=1))
        await eventually(lambda: _equals(sign_ins, [T0, T0 + timedelta(hours=1)]), "the job queued after ran")
    finally:
        supervisor.stop.set()
        await asyncio.wait_for(running, DEADLINE)
        server.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "portal.jobs.worker"]
    assert "worker lost Redis, reconnecting" in messages
    assert "worker reconnected to Redis" in messages
    assert not running.exception()


async def test_a_job_running_when_redis_went_away_is_not_cancelled_once_redis_is_back(tmp_path, monkeypatch, caplog):
    """The supervisor gives running jobs a grace when Redis goes away; past it, a
    job whose Redis answers again goes on instead of being cancelled."""
    caplog.set_level(logging.INFO, logger="portal.jobs")
    monkeypatch.setattr(worker_module, "GRACE", 3.0)  # Redis is back well within it
    started, finish = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def long_job(ctx):
        started.set()
        try:
            await finish.wait()
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    server = RedisServer(tmp_path / "redis").start()
    settings = redis_settings(server)
    supervisor = Supervisor(
        lambda: new_worker(redis_settings=settings, poll_delay=0.05, functions=[func(long_job, name="long_job")]),
        first_delay=0.05,
        max_delay=0.2,
    )
    running = asyncio.create_task(supervisor.run())
    try:
        await asyncio.wait_for(supervisor.connected.wait(), DEADLINE)
        pool = await create_pool(settings)
        await pool.enqueue_job("long_job")
        await pool.aclose()
        await asyncio.wait_for(started.wait(), DEADLINE)
        first = supervisor.worker
        assert first is not None
        server.stop()
        await eventually(lambda: _true(first.main_task is not None and first.main_task.done()), "the worker lost Redis")
        server = RedisServer(tmp_path / "redis", port=server.port).start()
        await eventually(lambda: _true(_logged(caplog, "Redis is back, running jobs go on")), "the grace ran out")
        finish.set()
        await eventually(lambda: _true(bool(outcome)), "the job ended")
        await eventually(lambda: _true(supervisor.connections == 2), "the worker reconnected")
    finally:
        finish.set()
        supervisor.stop.set()
        await asyncio.wait_for(running, DEADLINE)
        server.stop()
    assert outcome == ["finished"]


def _logged(caplog, message: str) -> bool:
    return any(r.getMessage() == message for r in caplog.records)


async def test_a_worker_started_before_redis_waits_for_it(tree, tmp_path):
    server = RedisServer(tmp_path / "redis")  # not started yet: nothing listens on its port
    supervisor = supervisor_for(server)
    running = asyncio.create_task(supervisor.run())
    try:
        await asyncio.sleep(0.3)
        assert not running.done() and supervisor.connections == 0
        server.start()
        await asyncio.wait_for(supervisor.connected.wait(), DEADLINE)
        await enqueue(server, tree.managers["north"]["id"], tree.north["id"], T0)
        await eventually(lambda: _equals(sign_ins, [T0]), "the job ran")
    finally:
        supervisor.stop.set()
        await asyncio.wait_for(running, DEADLINE)
        server.stop()


async def test_a_job_that_loses_its_database_is_retried(tree, tmp_path, quick_retries, monkeypatch, caplog):
    """A real transient failure under a real worker. PostgreSQL: the job's backend
    is terminated (pg_terminate_backend) while it waits on a lock. SQLite: another
    connection holds the write lock until the job has failed on "database is
    locked". The job is retried and writes its entry once."""
    caplog.set_level(logging.INFO, logger="portal.jobs")
    server = RedisServer(tmp_path / "redis").start()
    try:
        await enqueue(server, tree.managers["direct"]["id"], tree.direct["id"], T0, _job_id="sign-in:trouble")
        worker = Worker(
            functions=WorkerSettings.functions,
            redis_settings=redis_settings(server),
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
            max_tries=WorkerSettings.max_tries,
        )
        trouble = _kill_the_jobs_backend if db.is_postgres() else _lock_the_sqlite_file
        await trouble(worker, monkeypatch, caplog)
        await worker.close()
    finally:
        server.stop()
    assert await sign_ins() == [T0]
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert worker.jobs_retried >= 1
    retried = [r for r in caplog.records if r.getMessage() == "job failed on a transient error, will retry"]
    assert retried and {r.job_id for r in retried} == {"sign-in:trouble"}
    assert retried[0].job_try == 1


def _transient_failures(caplog) -> int:
    return sum(r.getMessage() == "job failed on a transient error, will retry" for r in caplog.records)


async def _kill_the_jobs_backend(worker: Worker, monkeypatch, caplog) -> None:
    locker = await asyncpg.connect(db.engine().config["dsn"])
    try:
        await locker.execute("BEGIN; LOCK TABLE audit_entry IN ACCESS EXCLUSIVE MODE")
        burst = asyncio.create_task(worker.async_run())

        async def job_waits_on_the_lock() -> bool:
            return bool(await locker.fetchval(_WAITING_ON_LOCK))

        await eventually(job_waits_on_the_lock, "the job blocked on the locked table")
        assert await locker.fetchval(f"SELECT count(pg_terminate_backend(pid)) FROM ({_WAITING_ON_LOCK_PIDS}) w") == 1
        await locker.execute("ROLLBACK")
        await asyncio.wait_for(burst, DEADLINE)
    finally:
        await locker.close()


async def _lock_the_sqlite_file(worker: Worker, monkeypatch, caplog) -> None:
    # The portal waits 30 s for a busy SQLite file; a test need not.
    monkeypatch.setitem(db.engine().connection_kwargs, "timeout", 0.2)
    locker = sqlite3.connect(db.engine().connection_kwargs["database"], isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        burst = asyncio.create_task(worker.async_run())
        await eventually(lambda: _true(_transient_failures(caplog) >= 1), "the job failed on the locked file")
        locker.execute("ROLLBACK")
        await asyncio.wait_for(burst, DEADLINE)
    finally:
        locker.close()


_WAITING_ON_LOCK_PIDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
)
_WAITING_ON_LOCK = f"SELECT count(*) FROM ({_WAITING_ON_LOCK_PIDS}) w"


async def test_a_task_failing_once_on_a_transient_error_is_retried_by_arq(tmp_path, quick_retries, caplog):
    caplog.set_level(logging.INFO, logger="portal.jobs")
    calls: list[int] = []

    async def flaky(ctx, value):
        calls.append(ctx["job_try"])
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return value

    server = RedisServer(tmp_path / "redis").start()
    try:
        pool = await create_pool(redis_settings(server))
        job = await pool.enqueue_job("flaky", 42)
        await run_burst_worker([func(logged_job(flaky), name="flaky")], redis_pool=pool)
        assert await job.result(timeout=5) == 42
    finally:
        server.stop()
    assert calls == [1, 2]
    messages = [r.getMessage() for r in caplog.records if r.name == "portal.jobs"]
    assert messages.count("job started") == 2 and messages.count("job finished") == 1


async def test_a_permanent_failure_is_logged_with_the_job_id_and_not_retried(tmp_path, caplog):
    calls: list[int] = []

    async def broken(ctx):
        calls.append(ctx["job_try"])
        raise ValueError("no such product")

    server = RedisServer(tmp_path / "redis").start()
    try:
        pool = await create_pool(redis_settings(server))
        await pool.enqueue_job("broken", _job_id="broken-1")
        worker = await run_burst_worker([func(logged_job(broken), name="broken")], redis_pool=pool)
    finally:
        server.stop()
    assert calls == [1]
    assert worker.jobs_failed == 1
    [failed] = [r for r in caplog.records if r.name == "portal.jobs" and r.levelname == "ERROR"]
    assert (failed.getMessage(), failed.job_id, failed.job) == ("job failed", "broken-1", "broken")
    assert failed.exc_info and "no such product" in failed.error


async def test_without_redis_a_transient_failure_is_retried_in_process(quick_retries):
    calls = 0

    async def flaky(ctx):
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "done"

    assert await logged_job(flaky)({"job_id": None}) == "done"
    assert calls == 3


async def test_a_finished_job_logs_the_counts_it_returns(caplog):
    async def counted(ctx):
        return {"claimed": 500, "renewed": 498, "declined": 2}

    with caplog.at_level("INFO", logger="portal.jobs"):
        await logged_job(counted)({"job_id": "renew_chunk:1"})
    finished = [r for r in caplog.records if r.getMessage() == "job finished"]
    assert [(r.job, r.result) for r in finished] == [("counted", {"claimed": 500, "renewed": 498, "declined": 2})]


@pytest.mark.parametrize(
    "exc,transient",
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (socket.gaierror(-3, "Temporary failure in name resolution"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("no such table: audit_entry"), False),
        (asyncpg.SerializationError("could not serialize access"), True),
        (asyncpg.DeadlockDetectedError("deadlock detected"), True),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (ValueError("bad"), False),
    ],
)
def test_which_errors_are_transient(exc, transient):
    assert is_transient(exc) is transient
    try:
        raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped) is transient


async def _equals(get: Callable[[], Awaitable[list]], expected: list) -> bool:
    return await get() == expected


async def _true(value: bool) -> bool:
    return value
