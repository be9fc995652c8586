"""Billing jobs: renewals of online subscriptions, renewal invoices,
lapses, and what a crash left paid but unprovisioned. Thin: the rules live in
portal/domain/billing/renewal/ and portal/domain/billing/settlement.py.

Under arq (portal/jobs/worker.py takes BILLING_FUNCTIONS and BILLING_CRON_JOBS):
- `billing_tick` every RENEW_EVERY_MINUTES and at start, unique across workers,
  runs the domain's tick (portal/domain/billing/renewal/tick.py, which holds the
  order of its steps), queueing one `renew_chunk` job per chunk of the online
  subscriptions due, so every worker takes a share;
- `renew_chunk` renews one chunk. A chunk is claimed in the database, so extra
  or repeated chunk jobs (a retried tick, two ticks at once) find nothing to do.

Without Redis, `start_in_process(timers, services)` runs the same tick on a timer in
the web process, renewing chunk after chunk itself.

The card processor comes in the job's context as ctx["services"] (portal/services.py),
put there by whoever runs the job: the worker at start-up, the web process's timer."""

from __future__ import annotations

from typing import Any

from portal.domain.billing.renewal import online, tick
from portal.domain.clock import utcnow
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic
from portal.services import Services

RENEW_EVERY_MINUTES = 5
IN_PROCESS_EVERY_S = RENEW_EVERY_MINUTES * 60.0


def _services(ctx: dict[str, Any]) -> Services:
    services = ctx.get("services")
    if not isinstance(services, Services):
        raise RuntimeError("billing jobs need ctx['services'] (portal/services.py), set where the worker starts")
    return services


async def renew_chunk(ctx: dict[str, Any], limit: int = tick.CHUNK) -> dict[str, int]:
    done = await online.renew_due(utcnow(), limit=limit, processor=_services(ctx).processor, ask_for_s=tick.ASK_FOR_S)
    redis = ctx.get("redis")
    if done["released"] and redis is not None:
        # What this job had no time to ask, taken by a job of its own (any worker's) now, not at the next tick.
        await redis.enqueue_job("renew_chunk", _job_id=f"{ctx.get('job_id') or 'renew_chunk'}:more")
    return done


async def billing_tick(ctx: dict[str, Any]) -> dict[str, int]:
    now = utcnow()
    redis = ctx.get("redis")
    if redis is None:
        return await tick.run(now, _services(ctx).processor)

    async def queue_chunks(count: int) -> None:
        for i in range(count):
            await redis.enqueue_job("renew_chunk", _job_id=f"renew_chunk:{now:%Y%m%dT%H%M%S}:{i}")

    return await tick.run(now, _services(ctx).processor, queue_chunks)


_tick = logged_job(billing_tick)
_chunk = logged_job(renew_chunk)

# Taken by portal/jobs/worker.py, as the mail jobs are.
BILLING_FUNCTIONS: list[Any] = [_tick, _chunk]
BILLING_CRON_JOBS: list[Any] = [periodic(billing_tick, minute=set(range(0, 60, RENEW_EVERY_MINUTES)))]


def start_in_process(timers: Timers, services: Services) -> None:
    """The embedded default (no Redis): the tick at start, then every few minutes."""

    async def billing_tick(ctx: dict[str, Any]) -> dict[str, int]:
        return await _tick({**ctx, "services": services})

    timers.every(IN_PROCESS_EVERY_S, billing_tick)
