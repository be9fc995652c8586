"""The arq task that applies a big CSV import ("Renew Licences" over JOB_ROWS rows).

Idempotent like every task: the domain applies an import once, in one
transaction, and a second run finds it done. A worker killed halfway leaves
nothing written and arq runs the job again. Register IMPORT_FUNCTIONS with the
worker's and the in-process queue's functions (portal/jobs/tasks.py)."""

from __future__ import annotations

import logging
from typing import Any

from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.imports import apply as applying
from portal.jobs.retry import logged_job
from portal.services import services_of_job

log = logging.getLogger("portal.jobs")


async def apply_import(
    ctx: dict[str, Any], import_id: int, company_id: int, user_id: int, managing_id: int | None
) -> int | None:
    """Returns how many users were renewed (None if the manager can no longer act)."""
    actor = await load_actor(user_id, managing_id)
    if actor is None:
        log.warning("import not applied: its manager can no longer sign in", extra={"import_id": import_id})
        return None
    result = await applying.apply(actor, company_id, import_id, utcnow(), services_of_job(ctx).import_files)
    return result["renewed"]


def job_id(import_id: int) -> str:
    """One job per import while it is queued (arq's _job_id)."""
    return f"csv-import-{import_id}"


IMPORT_FUNCTIONS = [logged_job(apply_import)]
