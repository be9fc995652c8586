"""The arq worker, supervised: `portal worker` (or `make worker`).

arq's `Worker.async_run()` raises when Redis goes away and never comes back by
itself, so a bare `arq` process dies with the first Redis restart and jobs pile
up. `supervise()` runs one worker at a time: when it stops on a Redis error it
is thrown away and a new one is made, after a growing pause (1 s, 2 s, 4 s …
at most a minute), with each loss and reconnection logged. A PostgreSQL outage
does not stop the worker: jobs that hit it fail on a transient error and are
retried by `logged_job` (portal/jobs/retry.py); the database pool is opened
once, retried the same way if PostgreSQL is down when the worker starts, and
so is the HTTP client that webhooks leave by (ctx["webhook_client"]): one per
process, its connections kept alive, closed when the process stops.

`arq portal.jobs.worker.WorkerSettings` still works, unsupervised."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from arq.connections import RedisSettings
from arq.worker import Worker, create_worker
from redis import exceptions as redis_errors

from portal import db
from portal.domain.webhooks import delivery as webhook_delivery
from portal.jobs.audit_retention import AUDIT_RETENTION_CRON_JOBS
from portal.jobs.auto_renewal import AUTO_RENEWAL_CRON_JOBS, AUTO_RENEWAL_FUNCTIONS
from portal.jobs.billing import BILLING_CRON_JOBS, BILLING_FUNCTIONS
from portal.jobs.bulk import BULK_CRON_JOBS
from portal.jobs.import_files import IMPORT_FILE_CRON_JOBS
from portal.jobs.mail import MAIL_CRON_JOBS, MAIL_FUNCTIONS
from portal.jobs.retry import MAX_TRIES, is_transient
from portal.jobs.sso import SSO_CRON_JOBS
from portal.jobs.tasks import FUNCTIONS
from portal.jobs.webhooks import WEBHOOK_CRON_JOBS, WEBHOOK_FUNCTIONS
from portal.services import build_services
from portal.settings import get_settings

log = logging.getLogger("portal.jobs.worker")

FIRST_DELAY = 1.0
MAX_DELAY = 60.0
# A job still running when the worker stops, or when Redis went away, gets this
# long to finish its database work. Then, if Redis is still away (or the worker
# is stopping), it is cancelled and runs again later (jobs are idempotent; a
# cancelled delivery gives its e-mails back); if Redis is back, it goes on.
GRACE = 30.0
# How long a look at whether Redis answers again may take.
PING_TIMEOUT = 5.0
# What a lost Redis (or a Redis that never answered) raises out of arq.
_REDIS_LOST = (redis_errors.RedisError, ConnectionError, OSError, asyncio.TimeoutError)


async def startup(ctx: dict[str, Any]) -> None:
    services = ctx["services"] = build_services(get_settings())  # the card processor, for billing jobs
    ctx["webhook_client"] = webhook_delivery.new_client(services.webhook_sender.at_once)
    await db.open_pool()


async def shutdown(ctx: dict[str, Any]) -> None:
    if client := ctx.pop("webhook_client", None):
        await client.close()
    await db.close_pool()


class WorkerSettings:
    # Each task is wrapped by logged_job where it is defined (portal/jobs/retry.py).
    functions = [*FUNCTIONS, *MAIL_FUNCTIONS, *BILLING_FUNCTIONS, *AUTO_RENEWAL_FUNCTIONS, *WEBHOOK_FUNCTIONS]
    cron_jobs = [
        *MAIL_CRON_JOBS,
        *BILLING_CRON_JOBS,
        *IMPORT_FILE_CRON_JOBS,
        *AUTO_RENEWAL_CRON_JOBS,
        *WEBHOOK_CRON_JOBS,
        *SSO_CRON_JOBS,
        *AUDIT_RETENTION_CRON_JOBS,
        *BULK_CRON_JOBS,
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url or "redis://127.0.0.1:6379/0")
    max_tries = MAX_TRIES


def new_worker(**overrides: Any) -> Worker:
    """A worker of WorkerSettings for the supervisor: it handles no signals and
    leaves the database pool to the supervisor, which outlives it."""
    options: dict[str, Any] = {"handle_signals": False, "on_startup": None, "on_shutdown": None}
    options["ctx"] = {"services": build_services(get_settings())}  # the card processor, for billing jobs
    return create_worker(WorkerSettings, **{**options, **overrides})  # type: ignore[arg-type]


class Supervisor:
    """Keeps one arq worker running until `stop` is set, through Redis outages."""

    def __init__(
        self,
        make_worker: Callable[[], Worker] = new_worker,
        *,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.make_worker = make_worker
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stop = asyncio.Event()
        self.connections = 0  # how many times a worker reached Redis and started
        self.losses = 0  # how many times a running worker lost it
        self.connected = asyncio.Event()  # set while a worker is connected
        self.worker: Worker | None = None
        self._opened_pool = False
        self._webhook_client: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        if not await self._open_database():
            return
        log.info("worker supervisor started")
        client = self._webhook_client = webhook_delivery.new_client(
            build_services(get_settings()).webhook_sender.at_once
        )
        try:
            failures = 0
            while not self.stop.is_set():
                started = time.monotonic()
                error = await self._run_one()
                if error is None:
                    break  # stopped, or a burst worker that ran out of jobs
                was_connected = self.connected.is_set()
                self.connected.clear()
                if was_connected:
                    self.losses += 1
                if time.monotonic() - started > self.max_delay:
                    failures = 0  # it ran well for a while: start the backoff over
                delay = min(self.max_delay, self.first_delay * 2**failures)
                failures += 1
                log.warning(
                    "worker lost Redis, reconnecting" if was_connected else "worker cannot reach Redis, retrying",
                    extra={"error": f"{type(error).__name__}: {error}", "retry_in_s": delay, "attempt": failures},
                )
                await self._sleep(delay)
        finally:
            await client.close()
            if self._opened_pool:
                await db.close_pool()
            log.info("worker supervisor stopped", extra={"connections": self.connections, "losses": self.losses})

    async def _run_one(self) -> BaseException | None:
        """Run a worker until it stops; the error that stopped it, if any."""
        worker = self.worker = self.make_worker()
        worker.on_startup = self._on_connect
        worker.ctx.setdefault("webhook_client", self._webhook_client)  # outlives the worker, as the pool does
        run = asyncio.create_task(worker.async_run())
        stopping = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not run.done():  # asked to stop: finish running jobs, pick no more
            worker.allow_pick_jobs = False
            await self._finish_jobs(worker, redis_lost=False)
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await self._discard(worker)
            log.info("worker stopped", extra=self._counts(worker))
            return None
        error = run.exception()
        if error is not None and not isinstance(error, _REDIS_LOST):
            await self._discard(worker)
            raise error  # a bug, not an outage: let the process fail loudly
        await self._finish_jobs(worker, redis_lost=True)
        await self._discard(worker)
        return error

    async def _on_connect(self, ctx: dict[str, Any]) -> None:
        self.connections += 1
        self.connected.set()
        worker = self.worker
        names = sorted(worker.functions) if worker else []
        event = "worker reconnected to Redis" if self.connections > 1 else "worker started"
        log.info(event, extra={"functions": ",".join(names), "connections": self.connections})

    @staticmethod
    def _counts(worker: Worker) -> dict[str, int]:
        return {"complete": worker.jobs_complete, "failed": worker.jobs_failed, "retried": worker.jobs_retried}

    async def _finish_jobs(self, worker: Worker, *, redis_lost: bool) -> None:
        """Let running jobs finish. A job is cancelled only when the worker is
        stopping, or when Redis is still away after the grace: a job whose Redis
        came back finishes its work (arq's own job timeout still bounds it)."""
        running = {t for t in worker.tasks.values() if not t.done()}
        while running:
            _, running = await asyncio.wait(running, timeout=GRACE)
            if not running:
                break
            if redis_lost and not self.stop.is_set() and await self._redis_answers(worker):
                log.info("Redis is back, running jobs go on", extra={"running": len(running)})
                continue
            for task in running:
                task.cancel()
            break
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)

    @staticmethod
    async def _redis_answers(worker: Worker) -> bool:
        try:
            return bool(await asyncio.wait_for(worker.pool.ping(), PING_TIMEOUT))
        except Exception:  # whatever stops a ping, Redis is not usable yet
            return False

    @staticmethod
    async def _discard(worker: Worker) -> None:
        """Drop a worker whose Redis may be gone: arq's close() would talk to it."""
        pool, worker._pool = worker._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):  # the connection is already broken; nothing to save
                await pool.aclose(close_connection_pool=True)

    async def _open_database(self) -> bool:
        """Open the pool, waiting for the database if it is down; False if asked to stop meanwhile."""
        failures = 0
        while True:
            try:
                self._opened_pool = await db.open_pool()
                return True
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = min(self.max_delay, self.first_delay * 2**failures)
                failures += 1
                log.warning(
                    "worker cannot reach the database, retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay, "attempt": failures},
                )
                if await self._sleep(delay):
                    return False

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, or return early (True) when asked to stop."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
            return True
        except TimeoutError:
            return False


def run_worker() -> None:
    """`portal worker`: a supervised worker until SIGINT or SIGTERM."""

    async def main() -> None:
        supervisor = Supervisor()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop.set)
        await supervisor.run()

    asyncio.run(main())
