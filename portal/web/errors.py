"""Error answers, all from one place: a page in the portal's layout for people,
a fragment for htmx requests (aimed at the layout's `#error-region`, since the
element that asked expects something else), JSON only under /api/.

htmx 2 swaps no 4xx/5xx answer by default: the layout's htmx config lets it
swap them, and the `HX-Retarget`/`HX-Reswap` headers below put the fragment in
the error region instead of the element that asked; `HX-Push-Url: false` keeps
an error's address out of the history."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap
from redis import exceptions as redis_errors

from portal.domain.errors import DomainError, NotFound, PermissionDenied
from portal.web.input_guard import BadInput
from portal.web.scim_errors import is_scim, scim_error
from portal.web.session import pending_page

log = logging.getLogger("portal.web")

ERROR_REGION = "#error-region"
# What a 503 asks clients (and proxies) to wait: about a Redis restart.
RETRY_AFTER_S = 30

TITLES = {
    400: "That did not work",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not possible here",
    409: "That changed meanwhile",
    413: "Too big",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Not available just now",
}
MESSAGES = {
    404: "There is nothing at this address.",
    405: "This address does not take that kind of request. Go back and use the page's buttons.",
    409: "This changed meanwhile. Reload the page to see it as it is now, then try again.",
    413: "What you sent is too big. Send a smaller file or less text.",
    429: "Too many requests in a short time. Wait a minute, then try again.",
    500: "The portal could not finish this. Nothing was changed. Try again; if it happens again, "
    "tell your administrator the reference below.",
    503: "The portal cannot reach what it needs just now. Try again in a minute.",
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _is_htmx(request: Request) -> bool:
    # A history restore wants a whole page, as render() gives it.
    headers = request.headers
    return headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"


def error_answer(request: Request, status: int, message: str | None = None, title: str | None = None) -> Response:
    """The one shape of every error: page, htmx fragment, JSON under /api/, or SCIM's error under /scim/."""
    message = message or MESSAGES.get(status) or TITLES.get(status, "Something is wrong with this request.")
    if is_scim(request.url.path):
        return scim_error(status, message)
    request_id = getattr(request.state, "request_id", None)
    if _is_api(request):
        body: dict[str, Any] = {"status_code": status, "detail": message}
        if request_id:
            body["request_id"] = request_id
        return Response(body, status_code=status)
    context = {
        "status": status,
        "title": title or TITLES.get(status, "Something is wrong with this request"),
        "message": message,
        "request_id": request_id,
        "actor": getattr(request.state, "actor", None),
    }
    if _is_htmx(request):
        return Template(
            "partials/_error.html",
            context=context,
            status_code=status,
            headers={"HX-Retarget": ERROR_REGION, "HX-Reswap": "innerHTML", "HX-Push-Url": "false"},
        )
    return Template("pages/error.html", context=context, status_code=status)


def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        message = str(exc)
    elif isinstance(exc, NotFoundException) and exc.detail not in ("Not Found", ""):
        message = exc.detail
    else:
        message = None
    return error_answer(request, 404, message)


def _csrf_failed(request: Request, exc: Exception) -> Response:
    """Litestar's CSRF middleware is the only raiser of PermissionDeniedException
    here (the portal's own refusals are the domain's PermissionDenied), so the
    type says it: a form without a valid token."""
    return error_answer(
        request,
        403,
        "This form was open too long or came from another site. Reload the page and try again.",
        title="Form expired",
    )


def _forbidden(request: Request, exc: Exception) -> Response:
    return error_answer(request, 403, str(exc) or "You cannot do this.")


def _refused(request: Request, exc: Exception) -> Response:
    """A rule said no (a form error the handler did not catch, a state change that
    is no longer possible): say so where the user is, nothing was written."""
    return error_answer(request, 400, str(exc))


def _sign_in_needed(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        response = error_answer(request, 401, str(getattr(exc, "detail", "") or exc))
        response.headers.update(getattr(exc, "headers", None) or {})  # WWW-Authenticate
        return response
    # Past the password but not the second factor: the step it is at, whatever it asked for.
    target = pending_page(request) or ("/login?next=" + request.url.path if request.method == "GET" else "/login")
    return ClientRedirect(target) if _is_htmx(request) else Redirect(target)


def _bad_input(request: Request, exc: Exception) -> Response:
    return error_answer(request, 400, str(getattr(exc, "detail", "")) or None)


def _unreadable(request: Request, exc: Exception) -> Response:
    """Litestar could not read a parameter as the handler declared it (`page=abc`)."""
    names = sorted({str(e.get("key")) for e in (getattr(exc, "extra", None) or []) if isinstance(e, dict)} - {"None"})
    if names:
        message = "This request has a value the portal cannot read: " + ", ".join(names) + "."
    else:
        message = "This request has a value the portal cannot read."
    return error_answer(request, 400, message)


def _wrong_method(request: Request, exc: Exception) -> Response:
    """405 names the methods the address takes (HTTP requires Allow), as the router found them."""
    response = error_answer(request, 405)
    allow = (getattr(exc, "headers", None) or {}).get("allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def _http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status >= 500:
        return _unexpected(request, exc, status)
    detail = str(exc.detail or "")
    # Litestar's own details are its status phrases ("Request Entity Too Large"): ours read better.
    if detail in ("", _phrase(status)) or (status in (413, 429) and not _is_api(request)):
        response = error_answer(request, status)
    else:
        response = error_answer(request, status, detail)
    response.headers.update(exc.headers or {})  # Retry-After, Allow, WWW-Authenticate
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _unexpected(request: Request, exc: Exception, status: int = 500) -> Response:
    """Anything no other handler knew: logged with the request id, which the page
    shows so that the user can quote it; no internals on the page."""
    request_id = getattr(request.state, "request_id", None)
    log.error(
        "unhandled exception",
        exc_info=exc,
        extra={
            "request_id": request_id,
            "method": request.method,
            "path": request.url.path,
            "route": request.scope.get("path_template"),
            "status": status,
        },
    )
    return error_answer(request, status)


def _briefly_unavailable(request: Request, exc: Exception) -> Response:
    """Redis (sessions, the sign-in limiter, the job queue) is away, for a
    restart or a failover: an outage, not a bug, so no traceback; the answer
    says to try again soon, and when."""
    log.warning(
        "Redis unavailable, answered 503",
        extra={
            "request_id": getattr(request.state, "request_id", None),
            "path": request.url.path,
            "error": f"{type(exc).__name__}: {exc}",
        },
    )
    answer = error_answer(request, 503, "The service is briefly unavailable. Try again in a minute.")
    answer.headers["Retry-After"] = str(RETRY_AFTER_S)
    return answer


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    redis_errors.ConnectionError: _briefly_unavailable,
    redis_errors.TimeoutError: _briefly_unavailable,
    NotFound: _not_found,
    NotFoundException: _not_found,
    PermissionDenied: _forbidden,
    DomainError: _refused,
    PermissionDeniedException: _csrf_failed,
    NotAuthorizedException: _sign_in_needed,
    BadInput: _bad_input,
    ValidationException: _unreadable,
    MethodNotAllowedException: _wrong_method,
    HTTPException: _http_error,
    Exception: _unexpected,
}
