from __future__ import annotations

from litestar import get
from litestar.params import FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from portal.domain import audit
from portal.web.render import render
from portal.web.session import CurrentActor


@get("/audit")
async def audit_log(request: HTMXRequest, actor: CurrentActor, page: FromQuery[int] = 1) -> Template:
    entries = await audit.list_entries(actor, page)
    return render(
        request, "pages/audit.html", {"entries": entries}, fragments={"audit-results": "partials/audit/_results.html"}
    )
