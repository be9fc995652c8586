"""The automatic renewal's tick: what runs every few minutes, in the order it must run.

First the managers' notices of the renewals to come (auto_renewal.NOTICE_AHEAD),
every one due, a chunk at a time; then the renewals due, handed out as chunk
jobs to whoever `queue_chunks` reaches (at most FAN_OUT), or renewed here chunk
after chunk. Chunks are claimed in the database (auto_renewal.renew_due), so
extra jobs find nothing to do."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime

from portal.domain.licences import auto_renewal

# More chunk jobs than workers would only find nothing to do.
FAN_OUT = 8
# One loop stops after this many chunks; the next tick goes on.
MAX_CHUNKS = 1_000
# With nothing free, renewing waits this long, in steps, for what other workers hold.
WAIT_FOR_OTHERS_S = 120.0
WAIT_STEP_S = 0.5


async def run(now: datetime, queue_chunks: Callable[[int], Awaitable[None]] | None = None) -> dict[str, int]:
    """One tick. With `queue_chunks`, that many chunk jobs are queued for the
    renewals due (each runs `renew_chunks`); without, they are renewed here."""
    counts = {"notices": 0}
    for _ in range(MAX_CHUNKS):
        written = await auto_renewal.notify_due(now)
        counts["notices"] += written
        if not written:
            break
    if queue_chunks is None:
        return counts | await renew_chunks(now)
    jobs = min(FAN_OUT, math.ceil(await auto_renewal.count_due(now) / auto_renewal.CHUNK))
    await queue_chunks(jobs)
    counts["jobs_queued"] = jobs
    return counts


async def renew_chunks(now: datetime) -> dict[str, int]:
    """Chunk after chunk until nothing is due. With nothing free while renewals
    are still due, another worker holds them: should it die, its chunk is rolled
    back and taken here, not at the next tick."""
    counts: dict[str, int] = {}
    waited = 0.0
    for _ in range(MAX_CHUNKS):
        done = await auto_renewal.renew_due(now, limit=auto_renewal.CHUNK)
        for key, value in done.items():
            counts[key] = counts.get(key, 0) + value
        if done["companies"]:
            continue
        if waited >= WAIT_FOR_OTHERS_S or not await auto_renewal.count_due(now):
            break
        await asyncio.sleep(WAIT_STEP_S)
        waited += WAIT_STEP_S
    return counts
