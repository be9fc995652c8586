"""SCIM's error body (RFC 7644 §3.12), for every error under /scim/: those the
SCIM handlers raise and those of the app (an address no route matches, a method
a route lacks, bad input stopped before any handler)."""

from __future__ import annotations

import json

from litestar import Response
from scim2_models import Context, Error

SCIM_MEDIA_TYPE = "application/scim+json"
SCIM_PREFIX = "/scim/"


def is_scim(path: str) -> bool:
    return path.startswith(SCIM_PREFIX)


def scim_json(content: dict, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(content).encode(), status_code=status, media_type=SCIM_MEDIA_TYPE, headers=headers
    )


def scim_error(status: int, detail: str, scim_type: str | None = None) -> Response:
    error = Error(status=status, detail=detail, scim_type=scim_type)
    # A missing or refused token: say which scheme works.
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if status == 401 else None
    return scim_json(error.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE), status, headers)
