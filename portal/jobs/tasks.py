"""Task functions. Each may run more than once (arq retries, a worker killed
mid-job), so each is idempotent; the rule itself lives in the domain.

Every function in FUNCTIONS goes through `logged_job` (portal/jobs/retry.py):
start, end and failure logged with the job id, transient failures retried."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain import audit
from portal.jobs.imports import IMPORT_FUNCTIONS
from portal.jobs.retry import logged_job


async def record_sign_in(ctx: dict[str, Any], user_id: int, company_id: int, at: datetime) -> bool:
    return await audit.record_sign_in(user_id, company_id, at)


FUNCTIONS = [logged_job(record_sign_in), *IMPORT_FUNCTIONS]
