"""Webhook jobs (portal.domain.webhooks): every 10 seconds on every arq worker,
events fanned out to endpoints and due deliveries sent (workers skip each other's
rows); every minute, on one worker, the batches' ending and expired events. In
the web process without Redis, the same on a timer. The sender (and whether it
may reach private addresses) comes from ctx["services"]."""

from __future__ import annotations

from typing import Any

from arq.cron import cron

from portal.domain.clock import utcnow
from portal.domain.webhooks import delivery, events
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic
from portal.services import Services

SEND_EVERY_S = 10
IN_PROCESS_SEND_EVERY_S = 3.0
IN_PROCESS_SWEEP_EVERY_S = 60.0


def _sender(ctx: dict[str, Any]) -> delivery.Sender:
    services = ctx.get("services")
    if not isinstance(services, Services):
        raise RuntimeError("webhook jobs need ctx['services'] (portal/services.py), set where the worker starts")
    return services.webhook_sender


async def send_webhooks(ctx: dict[str, Any]) -> dict[str, int]:
    fanned = await delivery.fan_out(utcnow())
    return {"fanned_out": fanned, **await delivery.deliver_due(utcnow(), _sender(ctx))}


async def sweep_webhook_batches(ctx: dict[str, Any]) -> int:
    return await events.sweep_batches(utcnow())


WEBHOOK_FUNCTIONS = [logged_job(send_webhooks), logged_job(sweep_webhook_batches)]
WEBHOOK_CRON_JOBS = [
    periodic(sweep_webhook_batches, timeout=300),
    cron(
        logged_job(send_webhooks, max_tries=3),  # type: ignore[arg-type]  # arq wants its WorkerCoroutine protocol
        name="cron:send_webhooks",
        second=set(range(0, 60, SEND_EVERY_S)),
        unique=False,
        run_at_startup=True,
        max_tries=3,
        timeout=120,
        keep_result=0,
    ),
]


def start_in_process(timers: Timers, services: Services) -> None:
    async def send(ctx: dict[str, Any]) -> dict[str, int]:
        return await send_webhooks({**ctx, "services": services})

    timers.every(IN_PROCESS_SEND_EVERY_S, logged_job(send))
    timers.every(IN_PROCESS_SWEEP_EVERY_S, logged_job(sweep_webhook_batches))
