"""The hourly job that deletes finished single sign-on attempts
(portal.domain.sso.flow): under arq (SSO_CRON_JOBS, taken by
portal/jobs/worker.py), on a timer in the web process without Redis."""

from __future__ import annotations

from typing import Any

from portal.domain.clock import utcnow
from portal.domain.sso import flow
from portal.jobs.queue import Timers
from portal.jobs.retry import logged_job, periodic

IN_PROCESS_EVERY_S = 3600.0


async def forget_finished_sso_attempts(ctx: dict[str, Any]) -> int:
    return await flow.forget_finished_attempts(utcnow())


_forget = logged_job(forget_finished_sso_attempts)

SSO_CRON_JOBS: list[Any] = [periodic(forget_finished_sso_attempts, minute=17)]


def start_in_process(timers: Timers) -> None:
    timers.every(IN_PROCESS_EVERY_S, _forget)
