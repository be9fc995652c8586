"""/scim/v2: SCIM 2.0 provisioning of a customer's learners by Entra ID, Okta
or any SCIM client, with a company's bearer token. Translation only: the rules
are portal/domain/scim's. No session, no CSRF (a bearer token is no ambient
credential); every answer and error is application/scim+json."""

from __future__ import annotations

import json
import logging
from typing import Any

from litestar import Request, Response, Router, delete, get, patch, post, put
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from scim2_models import (
    Context,
    InvalidValueException,
    ListResponse,
    NotImplementedException,
    Path,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    UnauthorizedException,
)
from scim2_models import NotFoundException as ScimNotFound

from portal.domain.access import Actor
from portal.domain.clock import utcnow
from portal.domain.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from portal.domain.scim import schema, tokens
from portal.domain.scim import users as scim_users
from portal.domain.scim.resources import from_document
from portal.domain.scim.schema import USER_SCHEMA
from portal.web.scim_errors import scim_error, scim_json

log = logging.getLogger("portal.web.scim")

SCIM_PATH = "/scim/v2"


def base_url(request: Request) -> str:
    return request.app.state["settings"].base_url + SCIM_PATH


async def _actor(request: Request) -> Actor:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    actor = await tokens.token_actor(token.strip(), utcnow()) if scheme.lower() == "bearer" and token else None
    if actor is None:
        raise UnauthorizedException(detail="A valid SCIM token is needed: Authorization: Bearer <token>.")
    return actor


def _dump(obj: Any, context: Context, params: ResponseParameters | None = None) -> dict:
    return obj.model_dump(scim_ctx=context, response_parameters=params)


def _params(request: Request) -> ResponseParameters | None:
    def paths(name: FromPath[str]) -> list[Path] | None:
        raw = request.query_params.get(name)
        return [Path(part.strip()) for part in raw.split(",") if part.strip()] if raw else None

    attributes, excluded = paths("attributes"), paths("excludedAttributes")
    if not attributes and not excluded:
        return None
    try:
        return ResponseParameters(attributes=attributes, excluded_attributes=excluded)
    except ValueError as exc:
        raise InvalidValueException(detail=str(exc)) from None


def _whole(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit() and len(raw) < 10):
        raise InvalidValueException(detail=f"{name} must be a whole number.")
    return int(raw)


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise InvalidValueException(detail="The body is not JSON.") from None


@get("/ServiceProviderConfig")
async def service_provider_config(request: Request) -> Response:
    await _actor(request)
    config = schema.service_provider_config(base_url(request))
    return scim_json(_dump(config, Context.RESOURCE_QUERY_RESPONSE))


@get("/ResourceTypes")
async def resource_types(request: Request) -> Response:
    await _actor(request)
    found = [schema.user_resource_type(base_url(request))]
    listed = ListResponse[ResourceType](
        total_results=len(found), start_index=1, items_per_page=len(found), resources=found
    )
    return scim_json(_dump(listed, Context.RESOURCE_QUERY_RESPONSE))


@get("/ResourceTypes/{name:str}")
async def resource_type(request: Request, name: FromPath[str]) -> Response:
    await _actor(request)
    if name != "User":
        raise ScimNotFound(detail=f"No ResourceType {name}.")
    return scim_json(_dump(schema.user_resource_type(base_url(request)), Context.RESOURCE_QUERY_RESPONSE))


@get("/Schemas")
async def schemas(request: Request) -> Response:
    await _actor(request)
    found: list[Schema] = [schema.user_schema(base_url(request))]
    listed = ListResponse[Schema](total_results=len(found), start_index=1, items_per_page=len(found), resources=found)
    return scim_json(_dump(listed, Context.RESOURCE_QUERY_RESPONSE))


@get("/Schemas/{urn:str}")
async def schema_by_urn(request: Request, urn: FromPath[str]) -> Response:
    await _actor(request)
    if urn != USER_SCHEMA:
        raise ScimNotFound(detail=f"No Schema {urn}.")
    return scim_json(_dump(schema.user_schema(base_url(request)), Context.RESOURCE_QUERY_RESPONSE))


@get("/Users")
async def list_users(request: Request) -> Response:
    actor = await _actor(request)
    found = await scim_users.search(
        actor,
        request.query_params.get("filter"),
        _whole(request, "startIndex", 1) or 1,
        _whole(request, "count", None),
        base_url(request),
    )
    return scim_json(_dump(found, Context.SEARCH_RESPONSE, _params(request)))


@post("/Users", status_code=201)
async def create_user(request: Request) -> Response:
    actor = await _actor(request)
    params = _params(request)
    created = await scim_users.create(actor, await _body(request), utcnow(), base_url(request))
    # The document is the answer unless attributes are chosen, which the model applies.
    answer = created if params is None else _dump(from_document(created), Context.RESOURCE_CREATION_RESPONSE, params)
    return scim_json(answer, 201, {"Location": created["meta"]["location"]})


@get("/Users/{user_id:str}")
async def get_user(request: Request, user_id: FromPath[str]) -> Response:
    actor = await _actor(request)
    found = await scim_users.get(actor, user_id, base_url(request))
    return scim_json(_dump(found, Context.RESOURCE_QUERY_RESPONSE, _params(request)))


@put("/Users/{user_id:str}")
async def replace_user(request: Request, user_id: FromPath[str]) -> Response:
    actor = await _actor(request)
    replaced = await scim_users.replace(actor, user_id, await _body(request), utcnow(), base_url(request))
    return scim_json(_dump(replaced, Context.RESOURCE_REPLACEMENT_RESPONSE, _params(request)))


@patch("/Users/{user_id:str}")
async def patch_user(request: Request, user_id: FromPath[str]) -> Response:
    actor = await _actor(request)
    patched = await scim_users.patch(actor, user_id, await _body(request), utcnow(), base_url(request))
    return scim_json(_dump(patched, Context.RESOURCE_PATCH_RESPONSE, _params(request)))


@delete("/Users/{user_id:str}", status_code=204)
async def delete_user(request: Request, user_id: FromPath[str]) -> None:
    actor = await _actor(request)
    await scim_users.delete(actor, user_id, utcnow())


@post("/.search")
async def search_everything(request: Request) -> Response:
    await _actor(request)
    raise NotImplementedException(detail="Search /Users instead: the portal serves one resource type.")


def _scim_exception(request: Request, exc: SCIMException) -> Response:
    error = exc.to_error()
    return scim_error(int(error.status or 400), error.detail or "", error.scim_type)


def _domain_error(request: Request, exc: DomainError) -> Response:
    if isinstance(exc, NotFound):
        return scim_error(404, str(exc))
    if isinstance(exc, PermissionDenied):
        return scim_error(403, str(exc))
    if isinstance(exc, ValidationFailed):
        return scim_error(400, " ".join(exc.errors.values()), "invalidValue")
    return scim_error(400, str(exc))


def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code >= 500:
        return _unexpected(request, exc)
    return scim_error(exc.status_code, str(exc.detail or ""))


def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled exception", exc_info=exc, extra={"request_id": request_id, "path": request.url.path})
    return scim_error(500, f"The portal could not finish this; nothing was changed. Reference: {request_id}.")


SCIM_ROUTER = Router(
    path=SCIM_PATH,
    include_in_schema=False,
    # A bearer token, not a cookie, authenticates every request here: nothing for CSRF to protect.
    opt={"exclude_from_csrf": True, "skip_session": True},
    route_handlers=[
        service_provider_config,
        resource_types,
        resource_type,
        schemas,
        schema_by_urn,
        list_users,
        create_user,
        get_user,
        replace_user,
        patch_user,
        delete_user,
        search_everything,
    ],
    exception_handlers={
        SCIMException: _scim_exception,
        DomainError: _domain_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    },
)
