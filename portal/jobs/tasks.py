"""Task functions. Each may run more than once (arq retries, a worker killed
mid-job), so each is idempotent; the rule itself lives in the domain.

Every function in FUNCTIONS goes through `logged_job` (portal/jobs/retry.py):
start, end and failure logged with the job id, transient failures retried."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain import audit
from portal.domain.billing import stripe_events
from portal.domain.clock import utcnow
from portal.jobs.bulk import BULK_FUNCTIONS
from portal.jobs.imports import IMPORT_FUNCTIONS
from portal.jobs.retry import logged_job


async def record_sign_in(
    ctx: dict[str, Any], user_id: int, company_id: int, at: datetime, method: str = "password"
) -> bool:
    return await audit.record_sign_in(user_id, company_id, at, {"method": method})


async def process_stripe_event(ctx: dict[str, Any], event_id: str) -> str:
    return await stripe_events.process(event_id, utcnow())


FUNCTIONS = [logged_job(record_sign_in), logged_job(process_stripe_event), *IMPORT_FUNCTIONS, *BULK_FUNCTIONS]
