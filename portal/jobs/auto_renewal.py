"""The automatic renewal job: thin; the rule lives in portal/domain/licences/auto_renewal.py.

Under arq (portal/jobs/worker.py takes AUTO_RENEWAL_FUNCTIONS and AUTO_RENEWAL_CRON_JOBS):
- `auto_renewal_tick` every EVERY_MINUTES and at start, unique across workers:
  queues the managers' notices of renewals to come, then one
  `auto_renew_chunks` job per CHUNK of companies due (at most FAN_OUT), so
  every worker takes a share;
- `auto_renew_chunks` renews chunk after chunk until nothing is due. A chunk
  is claimed in the database (its companies locked, PostgreSQL skipping those
  another worker holds; each batch claimed by a unique key), so jobs running
  at once share the work, and extra or repeated ones find nothing to do; what
  a killed worker held is rolled back and taken by the others.

Without Redis, `start_in_process(timers)` runs the same tick on a timer in the
web process, renewing every chunk itself."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from portal.domain.clock import utcnow
from portal.domain.licences import auto_renewal
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic

EVERY_MINUTES = 5
IN_PROCESS_EVERY_S = EVERY_MINUTES * 60.0
# More chunk jobs than workers would only find nothing to do.
FAN_OUT = 8
# One job's own loop stops after this many chunks; the next tick goes on.
MAX_CHUNKS = 1_000
# A chunk job with nothing free waits this long, in steps, for what other workers hold.
WAIT_FOR_OTHERS_S = 120.0
WAIT_STEP_S = 0.5


async def auto_renew_chunks(ctx: dict[str, Any]) -> dict[str, int]:
    now = utcnow()
    counts: dict[str, int] = {}
    waited = 0.0
    for _ in range(MAX_CHUNKS):
        done = await auto_renewal.renew_due(now, limit=auto_renewal.CHUNK)
        for key, value in done.items():
            counts[key] = counts.get(key, 0) + value
        if done["companies"]:
            continue
        # Nothing free: done, unless another worker holds what is left. Should it
        # die, its chunk is rolled back and taken here, not at the next tick.
        if waited >= WAIT_FOR_OTHERS_S or not await auto_renewal.count_due(now):
            break
        await asyncio.sleep(WAIT_STEP_S)
        waited += WAIT_STEP_S
    return counts


async def auto_renewal_tick(ctx: dict[str, Any]) -> dict[str, int]:
    now = utcnow()
    counts = {"notices": 0}
    for _ in range(MAX_CHUNKS):
        written = await auto_renewal.notify_due(now)
        counts["notices"] += written
        if not written:
            break
    redis = ctx.get("redis")
    if redis is None:
        counts.update(await auto_renew_chunks(ctx))
        return counts
    due = await auto_renewal.count_due(now)
    jobs = min(FAN_OUT, math.ceil(due / auto_renewal.CHUNK))
    for i in range(jobs):
        await redis.enqueue_job("auto_renew_chunks", _job_id=f"auto_renew_chunks:{now:%Y%m%dT%H%M%S}:{i}")
    counts["jobs_queued"] = jobs
    return counts


_tick = logged_job(auto_renewal_tick)
_chunks = logged_job(auto_renew_chunks)

AUTO_RENEWAL_FUNCTIONS: list[Any] = [_tick, _chunks]
AUTO_RENEWAL_CRON_JOBS: list[Any] = [periodic(auto_renewal_tick, minute=set(range(0, 60, EVERY_MINUTES)), second=30)]


def start_in_process(timers: Timers) -> None:
    """The embedded default (no Redis): the tick at start, then every few minutes."""
    timers.every(IN_PROCESS_EVERY_S, _tick)
