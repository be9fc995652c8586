"""One code path for a page and its htmx fragment."""

from __future__ import annotations

from typing import Any

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from portal.web.flash import take_flashes


def render(
    request: HTMXRequest,
    page: str,
    context: dict[str, Any],
    fragments: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    """Render `page`, or, when htmx targets one of `fragments` (element id →
    partial template), just that partial. Boosted links also send HX-Request,
    so the target decides, not the header."""
    restoring = request.htmx and request.htmx.history_restore_request
    target = request.htmx.target if request.htmx and not restoring else None
    template = (fragments or {}).get(target or "", page)
    context.setdefault("actor", getattr(request.state, "actor", None))
    context.setdefault("brand", getattr(request.state, "brand", None))
    if template.startswith("pages/"):
        # Only a page has the layout that shows them; a fragment leaves them waiting.
        context["flashes"] = take_flashes(request)
    return Template(template_name=template, context=context, status_code=status_code)
