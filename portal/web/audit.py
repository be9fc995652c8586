from __future__ import annotations

from litestar import get
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from portal.domain import audit
from portal.domain.access import Actor
from portal.web.render import render


@get("/audit")
async def audit_log(request: HTMXRequest, actor: Actor, page: int = 1) -> Template:
    entries = await audit.list_entries(actor, page)
    return render(request, "pages/audit.html", {"entries": entries},
                  fragments={"audit-results": "partials/audit/_results.html"})
