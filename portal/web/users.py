"""Adding managers and learners to a company."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from portal.domain import users
from portal.domain.access import get_company
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.web.render import render
from portal.web.session import CurrentActor


class UserController(Controller):
    path = "/companies/{company_id:int}/users"

    @get("/new", name="users.new")
    async def new(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        company = await get_company(actor, company_id)
        roles = users.roles_for(actor, company)
        return render(
            request,
            "pages/user_form.html",
            {"company": company, "roles": roles, "values": {"role": roles[0]}, "errors": {}},
        )

    @post("/", name="users.create")
    async def create(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        company = await get_company(actor, company_id)
        form = await request.form()
        values = {k: str(form.get(k, "")) for k in ("name", "email", "role")}
        try:
            user, token = await users.create_user(
                actor, company_id, values["email"], values["name"], values["role"], utcnow()
            )
        except ValidationFailed as invalid:
            return render(
                request,
                "pages/user_form.html",
                {
                    "company": company,
                    "roles": users.roles_for(actor, company),
                    "values": values,
                    "errors": invalid.errors,
                },
                status_code=400,
            )
        link = f"{request.app.state.settings.base_url}/set-password/{token}" if token else None
        return render(
            request,
            "pages/user_created.html",
            {"company": company, "user": user, "link": link, "valid_hours": 72},
            status_code=201,
        )
