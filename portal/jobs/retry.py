"""Every task function runs through `logged_job`: it logs the job's start, end,
duration and failure with the job id, and turns a transient failure (a lost
connection, a serialization failure, a deadlock, a locked SQLite file, Redis
going away) into arq's `Retry` with a growing delay, so the job runs again
instead of being dropped. Anything else is a permanent failure: logged with the
job id and its traceback, and not retried (running it again would fail again).

Under arq the retry is arq's (the job goes back on the queue, `job_try` counts
up to MAX_TRIES). The in-process runner (no Redis) has no queue to put a job
back on, so there the wrapper waits and calls the task again itself, a few
times (IN_PROCESS_TRIES)."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from arq.cron import CronJob, cron
from arq.worker import Retry
from redis import exceptions as redis_errors

log = logging.getLogger("portal.jobs")

# Backoff 2, 4, 8 … seconds, at most 5 minutes: MAX_TRIES tries span about
# 40 minutes, long enough for a database failover or a restart of Redis.
MAX_TRIES = 12
MAX_DELAY = 300.0
IN_PROCESS_TRIES = 4

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted (OSError subclasses)
    TimeoutError,
    socket.gaierror,  # a name that did not resolve: DNS while a database host restarts
    asyncpg.PostgresConnectionError,  # class 08, and a connection closed mid-query
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
)
# PostgreSQL's answers that mean "not now": the server shutting down
# (57P01, also pg_terminate_backend; 57P02 after another backend crashed),
# starting up or in recovery (57P03), out of connections (53300), and
# conflicts that running again resolves (40001 serialization, 40P01 deadlock).
# Class 08 is a failed or lost connection.
_TRANSIENT_SQLSTATES = {"57P01", "57P02", "57P03", "53300", "40001", "40P01"}
_TRANSIENT_SQLSTATE_CLASSES = ("08",)
# asyncpg reports a connection that went away under it (the server stopped or
# crashed between two queries) not with a SQLSTATE but with an InterfaceError or
# InternalClientError saying so: "connection is closed", "the underlying
# connection is closed", or, for a connection of the pool, "connection has been
# released back to the pool" (the pool takes back a connection the moment it
# closes, and its holder's next query says this). The portal never keeps a
# pooled connection past its release (Piccolo acquires and releases them), so
# here that message means a lost connection, not a misuse.
_CONNECTION_GONE = (
    "connection is closed",
    "connection was closed",
    "connection lost",
    "connection has been released back to the pool",
)
_TRANSIENT_OS_ERRNOS = {"ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "ETIMEDOUT"}


def is_transient(exc: BaseException) -> bool:
    """Whether running the job again later may succeed: classified by what the
    error means (a lost connection, a server going down or starting, a conflict),
    not by its class alone. Follows the chain of causes: a library may wrap the
    driver's error in its own, and a failed rollback hides the error before it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _means_try_later(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _means_try_later(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES)
    ):
        return True
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
        return any(words in str(exc).lower() for words in _CONNECTION_GONE)
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc).lower()  # "database is locked": another writer held it past the busy timeout
    if isinstance(exc, OSError):
        return errno.errorcode.get(exc.errno or 0) in _TRANSIENT_OS_ERRNOS
    return False


def backoff(job_try: int) -> float:
    """Seconds to wait before try `job_try + 1`."""
    return min(MAX_DELAY, 2.0**job_try)


Task = Callable[..., Awaitable[Any]]


def logged_job(fn: Task, *, max_tries: int = MAX_TRIES, name: str | None = None) -> Task:
    """Wrap a task function `fn(ctx, *args)`; the wrapper keeps its name, so
    arq registers and enqueues it by the same name."""
    job_name = name or fn.__name__

    @functools.wraps(fn)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        under_arq = "job_try" in ctx
        job_try = ctx.get("job_try", 1)
        while True:
            fields = {"job": job_name, "job_id": ctx.get("job_id"), "job_try": job_try}
            log.info("job started", extra=fields)
            started = time.perf_counter()
            try:
                result = await fn(ctx, *args, **kwargs)
            except Retry:
                # The task asked for a retry itself (e.g. SMTP said "try later").
                log.info("job retry requested", extra={**fields, "duration_ms": _ms(started)})
                raise
            except Exception as exc:
                fields["duration_ms"] = _ms(started)
                tries = max_tries if under_arq else IN_PROCESS_TRIES
                if is_transient(exc) and job_try < tries:
                    delay = backoff(job_try) if under_arq else min(backoff(job_try), 10.0)
                    log.warning(
                        "job failed on a transient error, will retry",
                        extra={**fields, "error": _describe(exc), "retry_in_s": delay, "max_tries": tries},
                    )
                    if under_arq:
                        raise Retry(defer=delay) from exc
                    await asyncio.sleep(delay)
                    job_try += 1
                    continue
                reason = "gave up after transient errors" if is_transient(exc) else "failed"
                log.error(f"job {reason}", exc_info=True, extra={**fields, "error": _describe(exc)})
                raise
            # What it did (the counts a job returns) goes with it: what an operator looks for.
            done = {"result": result} if isinstance(result, dict) else {}
            log.info("job finished", extra={**fields, "duration_ms": _ms(started), **done})
            return result

    run.portal_logged = True  # type: ignore[attr-defined]
    return run


def is_logged(fn: Any) -> bool:
    """Whether `fn` already runs through `logged_job` (so it is not wrapped twice)."""
    return getattr(fn, "portal_logged", False)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def periodic(fn: Task, *, minute: int | set[int] | None = None, second: int = 0, timeout: int = 600) -> CronJob:
    """A cron job of `fn` run by one worker per slot (unique), at each worker's
    start too, with three tries on a transient error: the shape of every tick."""
    return cron(
        logged_job(fn, max_tries=3),  # type: ignore[arg-type]  # arq wants its WorkerCoroutine protocol
        name=f"cron:{fn.__name__}",
        minute=minute,
        second=second,
        unique=True,
        run_at_startup=True,
        max_tries=3,
        timeout=timeout,
    )
