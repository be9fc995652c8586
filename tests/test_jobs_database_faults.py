"""Every kind of job against PostgreSQL going away under it: stopped cleanly
(the errors asyncpg raises while the server shuts down, is down and starts
again) and crashed (the job's own backend terminated in the middle of its work).
Each job is put back for a retry, never dropped as a permanent failure, and the
retry does the work once.

"Crashed" is real on PostgreSQL: the backend of the connection the job is
using is terminated (pg_terminate_backend) before its first query runs, never
the shared server. SQLite has no server to lose; there the same test raises
what asyncpg raises for a backend killed mid-query, so both engines run it."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from arq.worker import Retry

from portal import db
from portal.domain.billing import payments
from portal.domain.clock import utcnow
from portal.domain.imports import preview
from portal.jobs import retry
from portal.jobs.billing import billing_tick, renew_chunk
from portal.jobs.imports import apply_import
from portal.jobs.mail import deliver_outbox, sweep_expiry
from portal.jobs.retry import is_transient, logged_job
from portal.jobs.tasks import record_sign_in
from portal.services import Services
from portal.tables import AuditEntry, OutboxEmail
from portal.tables.billing import Charge
from tests.factories import T0
from tests.test_billing_renewal import subscribe
from tests.test_imports_domain import FILE, FILES, actors, setup_north


def _with_cause(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def stopping_server_errors() -> list[BaseException]:
    """What a job's query meets while PostgreSQL stops, is down and starts
    (asyncpg 0.30+), in the order they come."""
    return [
        # The server's goodbye to a connection in the middle of a query.
        _with_cause(
            asyncpg.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation: terminating connection due to administrator command"
            ),
            asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ),
        # A transaction whose connection the server closed between two statements.
        _with_cause(
            asyncpg.InterfaceError("cannot call Transaction.rollback(): the underlying connection is closed"),
            asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released back to the pool"),
        ),
        # A connection of the pool whose server went away between two queries.
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released back to the pool"),
        asyncpg.InternalClientError("connection is closed"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    ]


class DatabaseFault:
    """The next query the portal runs meets a fault instead of its answer."""

    def __init__(self, monkeypatch) -> None:
        self.engine = db.engine()
        self.next: Any = None
        self.fired = 0
        engine_class = type(self.engine)  # the engine's attributes are slots: patched on its class
        original = engine_class.run_querystring
        self.original = lambda *args, **kwargs: original(self.engine, *args, **kwargs)
        fault = self

        async def run_querystring(engine, querystring, *args, **kwargs):
            return await fault._run(querystring, *args, **kwargs)

        monkeypatch.setattr(engine_class, "run_querystring", run_querystring)

    async def _run(self, querystring, *args, **kwargs):
        fault, self.next = self.next, None
        if fault is None:
            return await self.original(querystring, *args, **kwargs)
        self.fired += 1
        if fault == "crash":
            return await self._crash(querystring, *args, **kwargs)
        raise fault

    async def _crash(self, querystring, *args, **kwargs):
        if not db.is_postgres():
            raise stopping_server_errors()[0]
        transaction = self.engine.current_transaction.get()
        if transaction is not None:  # killed between two statements of its transaction
            await terminate(transaction.connection)
            return await self.original(querystring, *args, **kwargs)
        # Killed under a query outside a transaction: on a connection of the pool.
        query, values = querystring.compile_string(engine_type=self.engine.engine_type)
        async with self.engine.pool.acquire() as connection:
            await terminate(connection)
            return await connection.fetch(query, *values)


async def terminate(connection) -> None:
    pid = connection.get_server_pid()
    killer = await asyncpg.connect(db.engine().config["dsn"])
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        while await killer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            await asyncio.sleep(0.01)
    finally:
        await killer.close()
    await asyncio.sleep(0.05)  # the server's goodbye reaches the client (if not, the query meets the closed socket)


@pytest.fixture
def processor():
    return payments.TestProcessor()


async def _sign_in(tree, processor):
    user, company = tree.managers["direct"]["id"], tree.direct["id"]

    async def done() -> None:
        entries = await AuditEntry.select(AuditEntry.at).where(AuditEntry.action == "sign_in")
        assert [e["at"] for e in entries] == [T0]

    return record_sign_in, (user, company, T0), done


async def _delivery(tree, processor):
    from tests.test_mail_delivery import queue

    await queue(tree, [tree.email("north")])

    async def done() -> None:
        assert [r["status"] for r in await OutboxEmail.select(OutboxEmail.status)] == ["captured"]

    return deliver_outbox, (), done


async def _renewal_chunk(tree, processor):
    await subscribe(tree.direct, end=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=12))

    async def done() -> None:
        assert len(processor.calls) == 1 and await Charge.count() == 1

    return renew_chunk, (), done


async def _csv_import(tree, processor):
    now = utcnow()  # the job renews at the real clock: the preview is made at it too
    await setup_north(tree, now=now)
    customer, _ = await actors(tree)
    import_id = await preview.receive(
        customer, tree.north["id"], "users.csv", io.BytesIO(FILE.encode("cp1252")), now, FILES
    )

    async def done() -> None:
        ctx = {"services": Services(processor, import_files=FILES)}
        assert (await apply_import(ctx, import_id, tree.north["id"], customer.user_id, None)) == 3  # nothing more

    return apply_import, (import_id, tree.north["id"], customer.user_id, None), done


async def _billing_tick(tree, processor):
    async def done() -> None:
        pass  # nothing due: it ran to its end

    return billing_tick, (), done


async def _expiry_sweep(tree, processor):
    async def done() -> None:
        pass

    return sweep_expiry, (), done


JOBS = {
    "sign-in audit": _sign_in,
    "e-mail delivery": _delivery,
    "renewal chunk": _renewal_chunk,
    "CSV import": _csv_import,
    "billing tick": _billing_tick,
    "expiry sweep": _expiry_sweep,
}


async def retried_then_done(fault: DatabaseFault, what: Any, fn, args: tuple, services: Services) -> None:
    """Under arq, each try a task of its own: the faulted try asks arq for a
    retry; the next try finishes."""
    job = logged_job(fn)
    fault.next = what
    with pytest.raises(Retry):
        await asyncio.create_task(job({"job_try": 1, "job_id": "faulted", "services": services}, *args))
    assert fault.fired
    fault.fired = 0
    await asyncio.create_task(job({"job_try": 2, "job_id": "faulted", "services": services}, *args))


@pytest.mark.parametrize("kind", JOBS)
async def test_a_job_meeting_a_stopping_postgresql_is_retried_not_dropped(kind, tree, processor, services, monkeypatch):
    fn, args, done = await JOBS[kind](tree, processor)
    fault = DatabaseFault(monkeypatch)
    for error in stopping_server_errors():
        await retried_then_done(fault, error, fn, args, services)
    await done()


@pytest.mark.parametrize("kind", JOBS)
async def test_a_job_whose_postgresql_backend_crashed_is_retried_not_dropped(
    kind, tree, processor, services, monkeypatch
):
    fn, args, done = await JOBS[kind](tree, processor)
    fault = DatabaseFault(monkeypatch)
    await retried_then_done(fault, "crash", fn, args, services)
    # Without Redis the wrapper retries in the same task: the crashed
    # transaction must not stay that task's current one.
    monkeypatch.setattr(retry, "backoff", lambda job_try: 0.01)
    fault.next = "crash"
    await logged_job(fn)({"job_id": None, "services": services}, *args)
    assert fault.fired == 1
    await done()


def test_every_error_of_a_stopping_server_is_transient():
    assert all(is_transient(error) for error in stopping_server_errors())
