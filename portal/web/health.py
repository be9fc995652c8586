from __future__ import annotations

from litestar import Request, get
from litestar.response import Response

from portal import db


@get("/healthz", exclude_from_csrf=True, skip_session=True)
async def healthz(request: Request) -> Response[dict]:
    database = await db.ping()
    queue = await request.app.state.jobs.ping()
    body = {
        "database": "ok" if database else "unreachable",
        "queue": ("ok" if queue else "unreachable"),
        "queue_kind": "arq" if request.app.state.settings.redis_url else "in-process",
    }
    return Response(body, status_code=200 if database and queue else 503)
