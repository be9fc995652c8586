"""Where the web hands work to: an arq queue on Redis, or an in-process runner
that calls the same task functions on the web process's event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from portal.jobs.tasks import FUNCTIONS
from portal.services import Services

log = logging.getLogger(__name__)
TASKS = {fn.__name__: fn for fn in FUNCTIONS}


class JobQueue(Protocol):
    async def enqueue(self, name: str, *args: Any, job_id: str | None = None) -> None: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class ArqQueue:
    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, redis_url: str) -> ArqQueue:
        return cls(await create_pool(RedisSettings.from_dsn(redis_url)))

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None) -> None:
        await self.pool.enqueue_job(name, *args, _job_id=job_id)

    async def ping(self) -> bool:
        try:
            return bool(await self.pool.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self.pool.aclose()


class InProcessQueue:
    """Runs each job as a task on this event loop: the embedded default needs no
    Redis. Jobs are lost if the process stops, which a single-user install accepts."""

    def __init__(self, services: Services | None = None) -> None:
        self._running: set[asyncio.Task] = set()
        self.services = services

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None) -> None:
        task = asyncio.create_task(self._run(name, args))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, name: str, args: tuple) -> None:
        try:
            await TASKS[name]({"job_id": None, "services": self.services}, *args)
        except Exception:
            log.exception("in-process job %s failed", name)

    async def drain(self) -> None:
        """Wait for every queued job (tests, and a clean shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        await self.drain()


class Timers:
    """Task functions run on this event loop every so often, for the embedded
    default (no Redis, no worker): each runs at once, then every `seconds`
    after the end of its previous run, until `stop`."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task] = []

    def every(self, seconds: float, fn: Any) -> None:
        self._tasks.append(asyncio.create_task(self._loop(seconds, fn), name=f"timer:{fn.__name__}"))

    @staticmethod
    async def _loop(seconds: float, fn: Any) -> None:
        while True:
            try:
                await fn({"job_id": None})
            except Exception:
                log.exception("in-process job %s failed", fn.__name__)
            await asyncio.sleep(seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def create_queue(redis_url: str | None, services: Services | None = None) -> JobQueue:
    """On Redis, the worker's jobs find their services in the worker's context;
    in process, the queue hands them `services`."""
    return await ArqQueue.connect(redis_url) if redis_url else InProcessQueue(services)
