"""The bulk action job: thin; the rule lives in portal/domain/bulk/.

`run_bulk(run_id)` applies the run's queued items one by one until none is
left. The web queues FAN_OUT of them per run (arq, one per job id while queued),
so every worker takes a share: items are claimed in the database (PostgreSQL
skips those another worker holds), so jobs running at once share the work, and
extra or repeated ones find nothing to do. A job with nothing free to claim
waits a little for what other workers hold: should one die, its item is rolled
back and taken here. Without Redis the in-process queue runs the same function
on the web process's loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from portal.domain.bulk import apply
from portal.domain.clock import utcnow
from portal.jobs.retry import logged_job

log = logging.getLogger("portal.jobs")

FAN_OUT = 2
# A job with nothing free waits this long, in steps, for what other workers hold.
WAIT_FOR_OTHERS_S = 60.0
WAIT_STEP_S = 0.25


async def run_bulk(ctx: dict[str, Any], run_id: int) -> dict[str, int]:
    applied = 0
    waited = 0.0
    while True:
        applied += await apply.process(run_id, utcnow())
        if await apply.finish(run_id, utcnow()):
            break
        if waited >= WAIT_FOR_OTHERS_S:
            log.warning("bulk run left with items another worker holds", extra={"run_id": run_id})
            break
        await asyncio.sleep(WAIT_STEP_S)
        waited += WAIT_STEP_S
    return {"applied": applied}


def job_ids(run_id: int, jobs: int = FAN_OUT) -> list[str]:
    """The run's jobs (arq's _job_id): queued again, they are not doubled while queued."""
    return [f"bulk:{run_id}:{n}" for n in range(jobs)]


BULK_FUNCTIONS = [logged_job(run_bulk)]
