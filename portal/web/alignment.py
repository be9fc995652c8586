"""A customer's renewal date: the partner's preview of moving every running batch
to one date, with the pro-rata charge or credit of each, and its Confirm."""

from __future__ import annotations

from datetime import date

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain.access import get_company
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.filters import as_date
from portal.domain.licences import alignment
from portal.web.flash import flash
from portal.web.forms import text
from portal.web.render import render
from portal.web.session import CurrentActor


def _day(raw: str) -> date | None:
    if not raw:
        return None
    day = as_date(raw)
    if day is None:
        raise ValidationFailed({"target": "Enter the date as YYYY-MM-DD."})
    return day


class AlignmentController(Controller):
    path = "/companies/{company_id:int}/alignment"

    @get("/", name="alignment.show")
    async def show(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        """The preview for the date asked (the current term's end at first)."""
        raw = text(request.query_params.get("target"), 20)
        return await self._page(request, actor, company_id, raw)

    @post("/", name="alignment.confirm")
    async def confirm(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template | Redirect:
        form = await request.form()
        raw, version = text(form.get("target"), 20), text(form.get("version"), 4000)
        try:
            plan = await alignment.align(actor, company_id, _day(raw), version, utcnow())
        except ValidationFailed as refused:
            # 409 when the batches moved under a preview; 400 for a Confirm that had none.
            status = 409 if version else 400
            return await self._page(request, actor, company_id, raw, refused.errors.get("target"), status_code=status)
        batches = f"{len(plan.moving)} batch{'' if len(plan.moving) == 1 else 'es'}"
        said = f"{batches} of {plan.company['name']} now end on {plan.target:%d %b %Y}"
        if plan.total_cents is not None:
            said += f"; {'charge' if plan.total_cents >= 0 else 'credit'} {plan.money(abs(plan.total_cents))}"
        flash(request, said + ".")
        return Redirect(request.app.route_reverse("companies.show", company_id=company_id), status_code=303)

    async def _page(
        self, request: HTMXRequest, actor, company_id: int, raw: str, problem: str | None = None, status_code: int = 200
    ) -> Template:
        company = await get_company(actor, company_id)
        plan = None
        try:
            plan = await alignment.preview(actor, company_id, _day(raw), utcnow())
        except ValidationFailed as refused:
            problem = problem or refused.errors.get("target")
            # A date the partner typed is refused (400); with none, the page says there is nothing to align.
            status_code = 400 if raw and status_code == 200 else status_code
        return render(
            request,
            "pages/company_alignment.html",
            {
                "company": company,
                "plan": plan,
                "target": raw or (f"{plan.target:%Y-%m-%d}" if plan else ""),
                "problem": problem,
            },
            status_code=status_code,
        )
