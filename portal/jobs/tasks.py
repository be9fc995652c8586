"""Task functions. Each may run more than once (arq retries, a worker killed
mid-job), so each is idempotent; the rule itself lives in the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain import audit


async def record_sign_in(ctx: dict[str, Any], user_id: int, company_id: int, at: datetime) -> bool:
    return await audit.record_sign_in(user_id, company_id, at)


FUNCTIONS = [record_sign_in]
