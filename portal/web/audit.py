"""Audit log: the entries under the wing in words, "Add Filter" (who, what,
company, dates), Previous/Next from a cursor, "Export CSV", and how long the log
is kept."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template

from portal.domain import audit
from portal.domain.access import Actor, require_partner_manager
from portal.domain.audit import export, retention
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.web.flash import flash
from portal.web.forms import text, to_int
from portal.web.render import render
from portal.web.session import CurrentActor


def _cursor_key(request: HTMXRequest) -> bytes:
    """The key that signs the log's cursors, derived from the app's secret (and not it)."""
    return hashlib.sha256(b"audit-log-cursor:" + request.app.state.settings.secret_key.encode()).digest()


class AuditController(Controller):
    path = "/audit"

    @get("/", name="audit.audit_log")
    async def audit_log(self, request: HTMXRequest, actor: CurrentActor, cursor: FromQuery[str] = "") -> Template:
        return render(
            request,
            "pages/audit.html",
            await _page(request, actor, cursor),
            fragments={"audit-results": "partials/audit/_results.html"},
        )

    @get("/export.csv", name="audit.export")
    async def export(self, request: HTMXRequest, actor: CurrentActor) -> Stream:
        """The log as filtered on screen, every entry of it, for a spreadsheet."""
        filters = audit.parse_filters(request.query_params)
        require_partner_manager(actor)  # refused before the first byte goes out
        return Stream(
            export.entries_csv(actor, filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
        )

    @get("/filters/{name:str}", name="audit.filter_field")
    async def filter_field(self, request: HTMXRequest, actor: CurrentActor, name: FromPath[str]) -> Template:
        """ "Add Filter": the field of one filter, added to the filter bar."""
        if name not in audit.AUDIT_FILTERS:
            name = "who"
        return render(
            request,
            "partials/_filter_field.html",
            {
                "name": name,
                "value": "",
                "spec": audit.AUDIT_FILTERS,
                "choices": await audit.filter_choices(actor, {name}),
            },
        )

    @post("/retention", name="audit.save_retention")
    async def save_retention(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        """ "Keep the audit log for": the actor's own company and every company under it."""
        form = await request.form()
        entered = text(form.get("keep_months"), 20)
        months = to_int(entered)
        try:
            if months is None:
                raise ValidationFailed({"keep_months": "Enter a whole number of months, such as 24."})
            before = await retention.for_path(actor.company_path)
            saved = await retention.save(actor, months, utcnow())
        except ValidationFailed as refused:
            context = await _page(request, actor, "")
            context |= {"retention_error": refused.errors.get("keep_months", ""), "retention_value": entered}
            return render(request, "pages/audit.html", context, status_code=400)
        was = f" (it was {before.months} months)" if before.months != saved.months else ""
        flash(
            request,
            f"The audit log of {actor.company_name} and the companies under it is now kept for {saved.months} "
            f"months{was}. Older entries are deleted within the hour.",
        )
        return Redirect(request.app.route_reverse("audit.audit_log") + "#retention", status_code=303)


async def _page(request: HTMXRequest, actor: Actor, cursor: str) -> dict:
    filters = audit.parse_filters(request.query_params)
    entries = await audit.list_entries(actor, filters, cursor or None, _cursor_key(request))
    active = audit.AUDIT_FILTERS.as_query(filters)
    return {
        "entries": entries,
        "filters": active,
        "spec": audit.AUDIT_FILTERS,
        "choices": await audit.filter_choices(actor, active),
        "query": urlencode(active),
        "retention": await retention.for_path(actor.company_path),
        "retention_limits": (retention.MIN_MONTHS, retention.MAX_MONTHS, retention.DEFAULT_MONTHS),
    }
