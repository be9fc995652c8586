"""Error answers: a page in the portal's layout for people, JSON for /api/."""

from __future__ import annotations

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.plugins.htmx import ClientRedirect, HTMXRequest
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_429_TOO_MANY_REQUESTS

from portal.domain.errors import DomainError, NotFound, PermissionDenied


def _is_sign_in(request: Request) -> bool:
    return request.method == "POST" and request.url.path == "/login"


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return Response({"status_code": status, "detail": message}, status_code=status)
    actor = getattr(request.state, "actor", None)
    return Template(
        "pages/error.html", context={"title": title, "message": message, "actor": actor}, status_code=status
    )


def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        message = str(exc)
    elif isinstance(exc, NotFoundException) and exc.detail != "Not Found":
        message = exc.detail
    else:
        message = "There is nothing at this address."
    return _error_page(request, 404, "Not found", message)


def _forbidden(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PermissionDeniedException) and "csrf" in str(exc.detail).lower():
        return _error_page(
            request,
            403,
            "Form expired",
            "This form was open too long or came from another site. Reload the page and try again.",
        )
    message = str(exc) if isinstance(exc, PermissionDenied) else "You cannot do this."
    return _error_page(request, 403, "Not allowed", message)


def _refused(request: Request, exc: Exception) -> Response:
    """A rule said no (a form error the handler did not catch, a state change that
    is no longer possible): say so where the user is, nothing was written."""
    return _error_page(request, 400, "That did not work", str(exc))


def _sign_in_needed(request: HTMXRequest, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return _error_page(request, 401, "Unauthorized", str(getattr(exc, "detail", exc)))
    target = "/login?next=" + request.url.path if request.method == "GET" else "/login"
    return ClientRedirect(target) if request.headers.get("hx-request") else Redirect(target)


def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == HTTP_429_TOO_MANY_REQUESTS and _is_sign_in(request):
        return Template(
            "pages/login.html",
            context={
                "error": "Too many sign-in attempts from your address. Wait a minute, then try again.",
                "email": "",
                "next": None,
                "actor": None,
            },
            status_code=429,
        )
    if exc.status_code == 403 and "csrf" in str(exc.detail).lower():
        return _error_page(
            request,
            403,
            "Form expired",
            "This form was open too long or came from another site. Reload the page and try again.",
        )
    return _error_page(request, exc.status_code, "Something is wrong with this request", str(exc.detail))


EXCEPTION_HANDLERS = {
    NotFound: _not_found,
    NotFoundException: _not_found,
    PermissionDenied: _forbidden,
    DomainError: _refused,
    PermissionDeniedException: _forbidden,
    NotAuthorizedException: _sign_in_needed,
    HTTPException: _http_error,
}
