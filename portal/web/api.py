"""JSON API for the training platform, and the partner's page of API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import FromPath, Parameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import entitlements
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.partner_api.keys import KeyHolder
from portal.web.api_v1 import error_spec, key_guard, provide_holder
from portal.web.render import render
from portal.web.session import CurrentActor

API_KEY_SCHEME = Components(
    security_schemes={
        "partnerKey": SecurityScheme(
            type="http",
            scheme="bearer",
            description="A partner's API key (Licenses → API keys). It sees only companies under that partner.",
        )
    }
)


@dataclass
class Entitlement:
    email: str
    company: str
    status: str
    """active, expiring (the seat ends within 72 hours), expired, unlicensed or deactivated"""
    licensed: bool
    product: str | None
    ends_at: datetime | None


# What the path may hold: an address without control characters (refused before any handler).
EMAIL_IN_PATH = Annotated[
    str, Parameter(pattern=r"^[^\x00-\x1f\x7f-\x9f/]{1,254}$", description="the learner's e-mail address")
]


@get(
    "/api/v1/entitlements/{email:str}",
    exclude_from_csrf=True,
    skip_session=True,
    security=[{"partnerKey": []}],
    guards=[key_guard],
    dependencies={"holder": Provide(provide_holder)},
    tags=["entitlements"],
    summary="Is this e-mail licensed?",
    description="License status of the user with this e-mail, if they belong to a company under the key's "
    "partner. 404 for anyone else, exactly as for an unknown address.",
    responses={
        401: error_spec("No API key, or a key that is unknown or revoked."),
        403: error_spec("The key lacks the read scope."),
        404: error_spec("No user with this e-mail under the key's partner (or no such address)."),
        429: error_spec("Too many requests for this key this minute; Retry-After says when to try again."),
    },
    name="api.entitlement",
)
async def entitlement(holder: KeyHolder, email: EMAIL_IN_PATH) -> Entitlement:
    holder.require("read")
    try:
        return Entitlement(**await entitlements.entitlement({"path": holder.actor.company_path}, email, utcnow()))
    except NotFound:
        raise NotFoundException("No licensed user with this e-mail under this partner.") from None


class ApiKeyController(Controller):
    path = "/settings/api-keys"
    include_in_schema = False

    @get("/", name="api.index")
    async def index(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        return await self._page(request, actor, {})

    async def _page(self, request, actor, extra: dict, status_code: int = 200) -> Template:
        return render(
            request,
            "pages/api_keys.html",
            {"keys": await entitlements.list_keys(actor), "scopes": entitlements.SCOPES, "errors": {}, **extra},
            status_code=status_code,
        )

    @post("/", name="api.create")
    async def create(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        form = await request.form()
        try:
            scopes = [str(scope) for scope in form.getall("scopes", [])]
            row, key = await entitlements.create_key(actor, str(form.get("name", "")), utcnow(), scopes)
        except ValidationFailed as invalid:
            return await self._page(request, actor, {"errors": invalid.errors}, status_code=400)
        return await self._page(request, actor, {"new_key": key, "new_row": row}, status_code=201)

    @post("/{key_id:int}/revoke", name="api.revoke")
    async def revoke(self, request: HTMXRequest, actor: CurrentActor, key_id: FromPath[int]) -> Redirect:
        await entitlements.revoke_key(actor, key_id, utcnow())
        return Redirect(request.app.route_reverse("api.index"))
