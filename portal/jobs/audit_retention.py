"""The cron job that deletes audit entries older than their partner keeps them
(portal.domain.audit.retention): hourly under arq (AUDIT_RETENTION_CRON_JOBS,
taken by portal/jobs/worker.py), on a timer in the web process without Redis.
Hourly rather than daily: each run deletes in chunks, and a first run on a big
log that was never swept is spread over runs that each stay short."""

from __future__ import annotations

from typing import Any

from portal.domain.audit import retention
from portal.domain.clock import utcnow
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic

IN_PROCESS_EVERY_S = 3600.0


async def delete_old_audit_entries(ctx: dict[str, Any]) -> int:
    return await retention.delete_old(utcnow())


_delete = logged_job(delete_old_audit_entries)

AUDIT_RETENTION_CRON_JOBS: list[Any] = [periodic(delete_old_audit_entries, minute=43)]


def start_in_process(timers: Timers) -> None:
    timers.every(IN_PROCESS_EVERY_S, _delete)
