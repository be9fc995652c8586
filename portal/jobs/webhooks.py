"""Webhook jobs (portal.domain.webhooks): every 10 seconds on every arq worker,
events fanned out to endpoints and due deliveries sent (workers skip each other's
rows); every minute, on one worker, the batches' ending and expired events. In
the web process without Redis, the same on a timer. Whether private addresses
may be reached comes from ctx["services"]; the HTTP client is the process's own,
ctx["webhook_client"], opened where the worker starts (portal/jobs/worker.py) and
closed where it stops. A run goes on while batches come back full, for at most
BUSY_FOR_S, so a backlog drains between two ticks instead of a batch a tick."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import aiohttp
from arq.cron import cron

from portal.domain.clock import utcnow
from portal.domain.webhooks import delivery, events
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic
from portal.services import Services

SEND_EVERY_S = 10
IN_PROCESS_SEND_EVERY_S = 3.0
IN_PROCESS_SWEEP_EVERY_S = 60.0
BATCH = 500  # deliveries claimed, and events fanned out, at a time
BUSY_FOR_S = 8.0  # less than SEND_EVERY_S: a run is over before the next tick


def _sender(ctx: dict[str, Any]) -> delivery.Sender:
    services = ctx.get("services")
    if not isinstance(services, Services):
        raise RuntimeError("webhook jobs need ctx['services'] (portal/services.py), set where the worker starts")
    return services.webhook_sender


def _client(ctx: dict[str, Any]) -> aiohttp.ClientSession:
    client = ctx.get("webhook_client")
    if not isinstance(client, aiohttp.ClientSession):
        raise RuntimeError(
            "webhook jobs need ctx['webhook_client'] (delivery.new_client), opened where the worker starts"
        )
    return client


async def send_webhooks(ctx: dict[str, Any]) -> dict[str, int]:
    sender, client = _sender(ctx), _client(ctx)
    totals: Counter[str] = Counter()
    until = time.monotonic() + BUSY_FOR_S
    while True:
        fanned = await delivery.fan_out(utcnow(), limit=BATCH)
        sent = await delivery.deliver_due(utcnow(), sender, client, limit=BATCH)
        totals.update({"fanned_out": fanned, **sent})
        if (fanned < BATCH and sum(sent.values()) < BATCH) or time.monotonic() > until:
            return dict(totals)


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
    """The web process's timer holds its client for as long as it runs: opened
    with the timer, closed when the timer is stopped (cancelled)."""

    async def send(ctx: dict[str, Any]) -> dict[str, int]:
        return await send_webhooks({**ctx, "services": services})

    job = logged_job(send)

    async def send_while_running(ctx: dict[str, Any]) -> None:
        async with delivery.new_client(services.webhook_sender.at_once) as client:
            while True:
                with contextlib.suppress(Exception):  # logged by logged_job; the timer goes on, as Timers' does
                    await job({**ctx, "webhook_client": client})
                await asyncio.sleep(IN_PROCESS_SEND_EVERY_S)

    send_while_running.__name__ = "send_webhooks"
    timers.every(IN_PROCESS_SEND_EVERY_S, send_while_running)
    timers.every(IN_PROCESS_SWEEP_EVERY_S, logged_job(sweep_webhook_batches))
