"""A customer's automatic renewal: its section of the company page, and the form
a partner manager saves it with."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.licences import auto_renewal
from portal.web.flash import flash
from portal.web.forms import text, to_int
from portal.web.render import render
from portal.web.session import CurrentActor

_PARTIAL = "partials/companies/_auto_renewal.html"


def _context(
    company: dict, setting: auto_renewal.Setting, values: dict | None = None, errors: dict | None = None
) -> dict:
    return {
        "company": company,
        "setting": setting,
        "values": values or {"mode": setting.mode, "days_before": setting.days_before, "quantity": setting.quantity},
        "errors": errors or {},
        "modes": auto_renewal.MODES,
        "quantities": auto_renewal.QUANTITIES,
        "days_choices": auto_renewal.DAYS_BEFORE,
    }


class AutoRenewalController(Controller):
    @get("/companies/{company_id:int}/auto-renewal", name="auto_renewal.show")
    async def show(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        """The section the company page loads; a page of its own without htmx."""
        company, setting = await auto_renewal.get_setting(actor, company_id)
        return render(
            request, "pages/company_auto_renewal.html", _context(company, setting), fragments={"auto-renewal": _PARTIAL}
        )

    @post("/companies/{company_id:int}/auto-renewal", name="auto_renewal.save")
    async def save(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template | Redirect:
        company, before = await auto_renewal.get_setting(actor, company_id)
        form = await request.form()
        values = {name: text(form.get(name), 20) for name in ("mode", "days_before", "quantity")}
        try:
            saved = await auto_renewal.save_setting(
                actor,
                company["id"],
                mode=values["mode"],
                days_before=to_int(values["days_before"]),
                quantity=values["quantity"],
                now=utcnow(),
            )
        except ValidationFailed as refused:
            return render(
                request,
                "pages/company_auto_renewal.html",
                _context(company, before, values, refused.errors),
                fragments={"auto-renewal": _PARTIAL},
                status_code=400,
            )
        flash(request, f"Automatic renewal for {company['name']}: {saved.said}")
        return Redirect(
            request.app.route_reverse("companies.show", company_id=company["id"]) + "#auto-renewal", status_code=303
        )
