"""E-mail jobs: deliver the outbox, sweep for expiry reminders, queue the weekly
digest. Thin: the rules live in portal/domain/notifications_sweep.py,
portal/domain/emails/digest.py and portal/mail/delivery.py.

Under arq (portal/jobs/worker.py takes MAIL_FUNCTIONS and MAIL_CRON_JOBS):
- `sweep_expiry` every minute and at start, unique across workers (one run per
  minute whatever the number of workers; a second run would insert nothing);
- `deliver_outbox` every 10 seconds on every worker, so each worker runs its
  own delivery loop and they share the queue through the claims. One loop at a
  time per process: a tick that finds one running returns at once.
- `weekly_digest` every hour at :05, unique: the first run from Monday 07:00
  UTC queues the week's digests; the others find them queued.

Without Redis, `start_in_process(timers, services)` runs the same functions on timers in the web
process (deliver every few seconds, sweep at start and every minute, the
digest at start and every hour)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq.cron import cron

from portal.domain.clock import utcnow
from portal.domain.emails.digest import queue_digests
from portal.domain.notifications_sweep import sweep
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic
from portal.mail.delivery import drain
from portal.mail.smtp import smtp_config
from portal.services import Services, services_of_job

log = logging.getLogger("portal.jobs.mail")

DELIVER_EVERY_S = 10
IN_PROCESS_DELIVER_EVERY_S = 5.0
SWEEP_EVERY_S = 60.0
DIGEST_EVERY_S = 3600.0
_delivering: asyncio.Lock | None = None


def _lock() -> asyncio.Lock:
    global _delivering
    if _delivering is None:
        _delivering = asyncio.Lock()
    return _delivering


async def deliver_outbox(ctx: dict[str, Any]) -> dict[str, int]:
    lock = _lock()
    if lock.locked():
        return {"skipped": 1}
    async with lock:
        done = await drain(smtp_config(), base_url=services_of_job(ctx).base_url)
    if done.more and ctx.get("redis") is not None:
        # Stopped for time with rows still due: go on now, not at the next tick.
        await ctx["redis"].enqueue_job("deliver_outbox")
    return done.__dict__


async def sweep_expiry(ctx: dict[str, Any]) -> dict[str, int]:
    return await sweep(utcnow())


async def weekly_digest(ctx: dict[str, Any]) -> dict[str, int]:
    return {"queued": await queue_digests(utcnow())}


_deliver = logged_job(deliver_outbox)
_sweep = logged_job(sweep_expiry)
_digest = logged_job(weekly_digest)

MAIL_FUNCTIONS = [_deliver, _sweep, _digest]
MAIL_CRON_JOBS = [
    periodic(sweep_expiry, timeout=300),
    periodic(weekly_digest, minute=5, timeout=600),
    cron(
        logged_job(deliver_outbox, max_tries=3),  # type: ignore[arg-type]  # arq wants its WorkerCoroutine protocol
        name="cron:deliver_outbox",
        second=set(range(0, 60, DELIVER_EVERY_S)),
        unique=False,
        run_at_startup=True,
        max_tries=3,
        timeout=120,
        keep_result=0,
    ),
]


def start_in_process(timers: Timers, services: Services) -> None:
    async def deliver_outbox(ctx: dict[str, Any]) -> dict[str, int]:
        return await _deliver({**ctx, "services": services})

    timers.every(IN_PROCESS_DELIVER_EVERY_S, deliver_outbox)
    timers.every(SWEEP_EVERY_S, _sweep)
    timers.every(DIGEST_EVERY_S, _digest)
