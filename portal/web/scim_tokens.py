"""The company page's "SCIM provisioning": create a token (shown once, with the
address to paste into Entra ID or Okta) and revoke one."""

from __future__ import annotations

from litestar import Controller, Request, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.scim import tokens
from portal.web.flash import flash
from portal.web.render import render
from portal.web.scim import SCIM_PATH
from portal.web.session import CurrentActor


class ScimTokenController(Controller):
    path = "/companies/{company_id:int}/scim-tokens"

    @post("/", name="scim_tokens.create")
    async def create(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template | Redirect:
        form = await request.form()
        try:
            row, token = await tokens.create_token(actor, company_id, str(form.get("name", "")), utcnow())
        except ValidationFailed as invalid:
            flash(request, "No token was created: " + " ".join(invalid.errors.values()), "error")
            return Redirect(request.app.route_reverse("companies.show", company_id=company_id) + "#scim")
        company = await tokens.manageable_company(actor, company_id)
        return render(
            request,
            "pages/scim_token_created.html",
            {
                "company": company,
                "row": row,
                "token": token,
                "scim_url": request.app.state["settings"].base_url + SCIM_PATH,
            },
            status_code=201,
        )

    @post("/{token_id:int}/revoke", name="scim_tokens.revoke")
    async def revoke(
        self, request: Request, actor: CurrentActor, company_id: FromPath[int], token_id: FromPath[int]
    ) -> Redirect:
        row = await tokens.revoke_token(actor, company_id, token_id, utcnow())
        flash(request, f"Token “{row['name']}” is revoked: requests with it are refused from now on.")
        return Redirect(request.app.route_reverse("companies.show", company_id=company_id) + "#scim")
