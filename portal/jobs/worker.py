"""arq worker: `arq portal.jobs.worker.WorkerSettings` (or `make worker`)."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings

from portal import db
from portal.jobs.tasks import FUNCTIONS
from portal.settings import get_settings


async def startup(ctx: dict[str, Any]) -> None:
    await db.open_pool()


async def shutdown(ctx: dict[str, Any]) -> None:
    await db.close_pool()


class WorkerSettings:
    functions = FUNCTIONS
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url or "redis://127.0.0.1:6379/0")
    max_tries = 5
