"""The bulk action job: thin; the rule lives in portal/domain/bulk/.

`run_bulk(run_id)` applies the run's queued items, a chunk at a time, until
none is left. The web queues FAN_OUT of them per run (arq, one per job id while
queued), so every worker takes a share: items are claimed in the database
(PostgreSQL skips those another worker holds), so jobs running at once share the
work, and extra or repeated ones find nothing to do. A job with nothing free to
claim waits a little for what other workers hold: should one die, its chunk is
rolled back and taken here.

A worker killed outright (SIGKILL, a lost machine) takes its jobs with it, and
arq would try them again only after their timeout: `resume_bulk_runs`, every
minute on one worker, queues one more job for each run with items waiting, which
shares the work with any job still running or finds nothing to do.

Under arq a job stops after BUDGET_S (well inside arq's job timeout, which would
cancel it) and queues its own continuation; without Redis the in-process queue
runs the same function on the web process's loop until the run is done."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from portal.domain.bulk import apply
from portal.domain.clock import utcnow
from portal.jobs.retry import logged_job, periodic

log = logging.getLogger("portal.jobs")

FAN_OUT = 2
# Under arq: a job's share of work before it hands over to its continuation (arq cancels a job at 300 s).
BUDGET_S = 120.0
# A job with nothing free waits this long, in steps, for what other workers hold.
WAIT_FOR_OTHERS_S = 60.0
WAIT_STEP_S = 0.25


async def run_bulk(ctx: dict[str, Any], run_id: int, slot: int = 0, part: int = 0) -> dict[str, int]:
    started = time.monotonic()
    redis = ctx.get("redis")
    applied = 0
    waited = 0.0
    while True:
        took = await apply.process(run_id, utcnow(), limit=apply.PER_CALL)
        applied += took
        if took:
            if redis is not None and time.monotonic() - started > BUDGET_S:
                await redis.enqueue_job("run_bulk", run_id, slot, part + 1, _job_id=job_id(run_id, slot, part + 1))
                return {"applied": applied, "continued": 1}
            continue
        if await apply.finish(run_id, utcnow()):
            break
        if waited >= WAIT_FOR_OTHERS_S:
            log.warning("bulk run left with items another worker holds", extra={"run_id": run_id})
            break
        await asyncio.sleep(WAIT_STEP_S)
        waited += WAIT_STEP_S
    return {"applied": applied}


def job_id(run_id: int, slot: int, part: int = 0) -> str:
    return f"bulk:{run_id}:{slot}:{part}"


def job_ids(run_id: int, jobs: int = FAN_OUT) -> list[str]:
    """The run's first jobs (arq's _job_id): queued again, they are not doubled while queued."""
    return [job_id(run_id, slot) for slot in range(jobs)]


async def resume_bulk_runs(ctx: dict[str, Any]) -> dict[str, int]:
    redis = ctx.get("redis")
    waiting = await apply.runs_waiting()
    if redis is not None:
        minute = utcnow().strftime("%Y%m%d%H%M")
        for run_id in waiting:
            await redis.enqueue_job("run_bulk", run_id, 0, 0, _job_id=f"bulk:{run_id}:resume:{minute}")
    return {"resumed": len(waiting)}


BULK_FUNCTIONS = [logged_job(run_bulk)]
BULK_CRON_JOBS = [periodic(resume_bulk_runs)]
