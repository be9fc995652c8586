"""The automatic renewal job: thin; the rules live in portal/domain/licences/auto_renewal.py
and the order of the tick's steps in portal/domain/licences/auto_renewal_tick.py.

Under arq (portal/jobs/worker.py takes AUTO_RENEWAL_FUNCTIONS and AUTO_RENEWAL_CRON_JOBS):
- `auto_renewal_tick` every EVERY_MINUTES and at start, unique across workers:
  queues the managers' notices of renewals to come, then one
  `auto_renew_chunks` job per chunk of companies due (at most the tick's
  FAN_OUT), so every worker takes a share;
- `auto_renew_chunks` renews chunk after chunk until nothing is due. A chunk
  is claimed in the database (its companies locked, PostgreSQL skipping those
  another worker holds; each batch claimed by a unique key), so jobs running
  at once share the work, and extra or repeated ones find nothing to do; what
  a killed worker held is rolled back and taken by the others.

Without Redis, `start_in_process(timers)` runs the same tick on a timer in the
web process, renewing every chunk itself."""

from __future__ import annotations

from typing import Any

from portal.domain.clock import utcnow
from portal.domain.licences import auto_renewal_tick as tick
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic

EVERY_MINUTES = 5
IN_PROCESS_EVERY_S = EVERY_MINUTES * 60.0


async def auto_renew_chunks(ctx: dict[str, Any]) -> dict[str, int]:
    return await tick.renew_chunks(utcnow())


async def auto_renewal_tick(ctx: dict[str, Any]) -> dict[str, int]:
    now = utcnow()
    redis = ctx.get("redis")
    if redis is None:
        return await tick.run(now)

    async def queue_chunks(count: int) -> None:
        for i in range(count):
            await redis.enqueue_job("auto_renew_chunks", _job_id=f"auto_renew_chunks:{now:%Y%m%dT%H%M%S}:{i}")

    return await tick.run(now, queue_chunks)


_tick = logged_job(auto_renewal_tick)
_chunks = logged_job(auto_renew_chunks)

AUTO_RENEWAL_FUNCTIONS: list[Any] = [_tick, _chunks]
AUTO_RENEWAL_CRON_JOBS: list[Any] = [periodic(auto_renewal_tick, minute=set(range(0, 60, EVERY_MINUTES)), second=30)]


def start_in_process(timers: Timers) -> None:
    """The embedded default (no Redis): the tick at start, then every few minutes."""
    timers.every(IN_PROCESS_EVERY_S, _tick)
