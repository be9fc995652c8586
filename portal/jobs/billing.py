"""Billing jobs: renewals of online subscriptions, renewal invoices,
lapses, and what a crash left paid but unprovisioned. Thin: the rules live in
portal/domain/billing/renewal/ and portal/domain/billing/settlement.py.

Under arq (portal/jobs/worker.py takes BILLING_FUNCTIONS and BILLING_CRON_JOBS):
- `billing_tick` every RENEW_EVERY_MINUTES and at start, unique across workers:
  provisions paid invoices a crash left unprovisioned and processes Stripe
  events whose job was lost; counts the online
  subscriptions due and queues one `renew_chunk` job per CHUNK of them, so
  every worker takes a share; then issues renewal invoices and reminders, and
  lapses or ends what ran out;
- `renew_chunk` renews one chunk. A chunk is claimed in the database, so extra
  or repeated chunk jobs (a retried tick, two ticks at once) find nothing to do.

Without Redis, `start_in_process(timers, services)` runs the same tick on a timer in
the web process, renewing chunk after chunk itself.

The card processor comes in the job's context as ctx["services"] (portal/services.py),
put there by whoever runs the job: the worker at start-up, the web process's timer."""

from __future__ import annotations

import math
from typing import Any

from portal.domain.billing import refunds, settlement, stripe_events
from portal.domain.billing.renewal import invoice_subscriptions, lapse, online
from portal.domain.clock import utcnow
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic
from portal.services import Services

RENEW_EVERY_MINUTES = 5
IN_PROCESS_EVERY_S = RENEW_EVERY_MINUTES * 60.0
CHUNK = 500
# One tick's own loops stop after this many chunks; the next tick goes on.
MAX_CHUNKS = 1_000
# A chunk stops asking cards after this long: well inside arq's job timeout (300 s), which
# would cancel it before any answer is recorded, and the chunk's 5-minute lease, after
# which another worker would take its charges for abandoned. What is not asked is
# released, due again at once, and taken by the next chunk job, which this one queues.
ASK_FOR_S = 120.0


def _services(ctx: dict[str, Any]) -> Services:
    services = ctx.get("services")
    if not isinstance(services, Services):
        raise RuntimeError("billing jobs need ctx['services'] (portal/services.py), set where the worker starts")
    return services


async def renew_chunk(ctx: dict[str, Any], limit: int = CHUNK) -> dict[str, int]:
    done = await online.renew_due(utcnow(), limit=limit, processor=_services(ctx).processor, ask_for_s=ASK_FOR_S)
    redis = ctx.get("redis")
    if done["released"] and redis is not None:
        # What this job had no time to ask, taken by a job of its own (any worker's) now, not at the next tick.
        await redis.enqueue_job("renew_chunk", _job_id=f"{ctx.get('job_id') or 'renew_chunk'}:more")
    return done


async def billing_tick(ctx: dict[str, Any]) -> dict[str, int]:
    now = utcnow()
    processor = _services(ctx).processor
    # First what a crash left paid and unprovisioned, so a renewal below finds its term in place.
    counts: dict[str, int] = {"provisioned_missed": await settlement.provision_missed(now)}
    # Stripe's events whose job was lost (queued while Redis was away, a worker killed).
    counts["stripe_events_taken_up"] = await stripe_events.process_waiting(now)
    # Refunds not asked of the processor yet (money taken for a void invoice) or left pending by a crash.
    counts["refunds_sent"] = await refunds.send_waiting(now, processor=processor)
    redis = ctx.get("redis")
    if redis is not None:
        due = await online.count_due(now)
        chunks = math.ceil(due / CHUNK)
        for i in range(chunks):
            await redis.enqueue_job("renew_chunk", _job_id=f"renew_chunk:{now:%Y%m%dT%H%M%S}:{i}")
        counts["chunks_queued"] = chunks
    else:
        for _ in range(MAX_CHUNKS):
            done = await online.renew_due(now, limit=CHUNK, processor=processor, ask_for_s=ASK_FOR_S)
            _add(counts, done)
            if done["claimed"] < CHUNK and not done["released"]:
                break
    for _ in range(MAX_CHUNKS):
        invoiced = await invoice_subscriptions.issue_renewal_invoices(now, limit=CHUNK)
        _add(counts, invoiced)
        if invoiced["issued"] < CHUNK:
            break
    counts["ended_or_lapsed"] = await lapse.lapse_unpaid(now)
    return counts


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


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
