"""The company list, a company's page, "Manage Company"."""

from __future__ import annotations

import secrets

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import companies, users
from portal.domain.access import get_company
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.licences import summary
from portal.domain.scim import tokens as scim_tokens
from portal.web.flash import flash
from portal.web.forms import text, to_int
from portal.web.render import render
from portal.web.session import CurrentActor


class CompanyController(Controller):
    @get("/companies", name="companies.index")
    async def index(
        self, request: HTMXRequest, actor: CurrentActor, q: FromQuery[str] = "", page: FromQuery[int] = 1
    ) -> Template:
        q = q.strip()[:100]
        listing = await companies.list_companies(actor, q, page)
        return render(
            request,
            "pages/companies.html",
            {"q": q, "listing": listing},
            fragments={"company-results": "partials/companies/_results.html"},
        )

    @get("/companies/new", name="companies.new")
    async def new(self, request: HTMXRequest, actor: CurrentActor, parent_id: FromQuery[int | None] = None) -> Template:
        return await self._form(request, actor, {"parent_id": parent_id or actor.company_id, "kind": "customer"}, {})

    @post("/companies", name="companies.create")
    async def create(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        form = await request.form()
        fields = ("name", "kind", "parent_id", "first_order", "po_number", "trial_seats", "form_token")
        values = {k: text(form.get(k), 200) for k in fields}
        now = utcnow()
        try:
            if values["kind"] == "customer":
                created = await companies.onboard_customer(
                    actor,
                    to_int(values["parent_id"]),
                    values["name"],
                    now,
                    first_order=to_int(values["first_order"]),
                    po_number=values["po_number"],
                    trial_seats=to_int(values["trial_seats"]),
                    form_token=values["form_token"],
                )
            else:
                created = await companies.create_company(
                    actor,
                    to_int(values["parent_id"]),
                    values["name"],
                    values["kind"],
                    now,
                    form_token=values["form_token"],
                )
        except ValidationFailed as invalid:
            # The order's own field names, as this form calls them.
            errors = {{"quantity": "first_order"}.get(k, k): v for k, v in invalid.errors.items()}
            if "form_token" in errors:
                values.pop("form_token")  # that submission is spent: the form gets a new one
            return await self._form(request, actor, values, errors, status_code=400)
        flash(request, f"{created['name']} was created.")
        return Redirect(request.app.route_reverse("companies.show", company_id=created["id"]))

    async def _form(
        self, request: HTMXRequest, actor: CurrentActor, values: dict, errors: dict, status_code: int = 200
    ) -> Template:
        parents = await companies.parent_choices(actor)
        # One token per filling of the form, kept while it comes back with errors:
        # a second post of the same filling (a double click) lands on the first's company.
        if not values.get("form_token"):
            values["form_token"] = secrets.token_urlsafe(24)
        return render(
            request,
            "pages/company_form.html",
            {"values": values, "errors": errors, "parents": parents, "kinds": companies.KIND_LABELS},
            status_code=status_code,
        )

    @get("/companies/{company_id:int}", name="companies.show")
    async def show(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        q: FromQuery[str] = "",
        page: FromQuery[int] = 1,
    ) -> Template:
        company = await get_company(actor, company_id)
        q = q.strip()[:100]
        people = await users.list_users(actor, company_id, q, page)
        return render(
            request,
            "pages/company.html",
            {
                "company": company,
                "people": people,
                "now": utcnow(),
                "q": q,
                "kind_label": companies.KIND_LABELS[company["kind"]],
                "license_summary": await summary.licence_summary(actor, company_id, utcnow())
                if company["kind"] == "customer"
                else None,
                "scim_tokens": await scim_tokens.list_tokens(actor, company_id)
                if scim_tokens.may_manage(actor, company)
                else None,
                "scim_url": request.app.state["settings"].base_url + "/scim/v2",
            },
            fragments={"user-results": "partials/users/_results.html"},
        )

    @post("/companies/{company_id:int}/manage", name="companies.manage")
    async def manage(self, request: Request, actor: CurrentActor, company_id: FromPath[int]) -> Redirect:
        company = await companies.enter_manage_mode(actor, company_id, utcnow())
        request.session["managing_id"] = company["id"]
        return Redirect(request.app.route_reverse("companies.show", company_id=company["id"]))

    @post("/manage/exit", name="companies.exit_manage")
    async def exit_manage(self, request: Request, actor: CurrentActor) -> Redirect:
        await companies.exit_manage_mode(actor, utcnow())
        request.session.pop("managing_id", None)
        return Redirect("/dashboard")
