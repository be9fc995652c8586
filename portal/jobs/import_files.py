"""The cron job that removes uploaded CSV files no longer needed
(portal.domain.imports.retention): hourly under arq (IMPORT_FILE_CRON_JOBS,
taken by portal/jobs/worker.py), on a timer in the web process without Redis.
The folder comes in the job's context, ctx["services"].import_files."""

from __future__ import annotations

from typing import Any

from portal.domain.clock import utcnow
from portal.domain.imports import retention
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic
from portal.services import Services, services_of_job

IN_PROCESS_EVERY_S = 3600.0


async def remove_old_import_files(ctx: dict[str, Any]) -> int:
    return await retention.remove_old_files(utcnow(), services_of_job(ctx).import_files)


_remove = logged_job(remove_old_import_files)

IMPORT_FILE_CRON_JOBS: list[Any] = [periodic(remove_old_import_files, minute=17)]


def start_in_process(timers: Timers, services: Services) -> None:
    async def remove_old_import_files(ctx: dict[str, Any]) -> int:
        return await _remove({**ctx, "services": services})

    timers.every(IN_PROCESS_EVERY_S, remove_old_import_files)
