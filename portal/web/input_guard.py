"""One check of every request's input before any handler runs, so no route can
forget it: ids in the path within the range of their column, whole numbers a
handler declares in the query as ASCII digits within the range of an integer
column, and no control characters in the path, the query string or a form field.

Why here and not in each handler: PostgreSQL refuses an integer ≥ 2³¹ and
text with a NUL, SQLite an integer ≥ 2⁶³; either way the query fails and the
user got a 500. A path id out of range cannot name anything (404); the rest is
a request the portal cannot use, said plainly (400)."""

from __future__ import annotations

import re
from functools import cache

from litestar import Request
from litestar.enums import ParamType
from litestar.exceptions import ClientException, NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg

from portal.domain.numbers import MAX_INT, whole_number

# In a URL no control character has a use. In a form field, tab, line feed and
# carriage return are what a text box sends; every other C0 control, DEL and
# the C1 controls are refused (NUL above all: PostgreSQL rejects it in text).
_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class BadInput(ClientException):
    """A request the portal cannot use, with a message that says why (400)."""


def _control_message(where: str) -> str:
    return (
        f"{where} contains a control character (such as a NUL byte) that the portal cannot store. "
        "Remove it and try again."
    )


@cache
def _integer_query_names(handler: HTTPRouteHandler) -> tuple[str, ...]:
    """The query parameters this handler reads as int (or int | None): declared
    with FromQuery, or plain `page: int = 1`, which Litestar reads from the query."""
    names = []
    in_path = {name for path in handler.paths for name in re.findall(r"{(\w+):", path)}
    dependencies = handler.resolve_dependencies()
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.param_type != ParamType.QUERY:
                continue
            name = kwarg.name or name
        elif kwarg is not None or name in dependencies or name in in_path:
            continue
        types = {t.annotation for t in field.inner_types} - {type(None)} if field.is_optional else {field.annotation}
        if types == {int}:
            names.append(name)
    return tuple(names)


def _typed_path_params(request: Request) -> dict[str, str]:
    """The path parameters as the address spells them: Litestar reads an int one
    with int(), which also takes "+5", "٣" and "1_0"."""
    parts = (request.scope.get("path_template") or "").split("/")
    segments = request.scope["path"].split("/")
    if len(parts) != len(segments):  # not a plain route's path: keep what Litestar read
        return {}
    pairs = zip(parts, segments, strict=True)
    return {part[1:-1]: typed for part, typed in pairs if part.startswith("{") and part.endswith("}")}


async def guard_input(request: Request) -> None:
    """Litestar `before_request` hook: raises NotFoundException or BadInput."""
    typed = _typed_path_params(request)
    for name, value in request.path_params.items():
        if isinstance(value, int) and not isinstance(value, bool):
            number = whole_number(typed.get(name, str(value)))
            if number is None or not 1 <= number <= MAX_INT:
                raise NotFoundException("There is nothing at this address.")
        if isinstance(value, str) and _URL_CONTROL.search(value):
            raise BadInput(_control_message("The address"))

    query = request.query_params
    for key, value in query.multi_items():
        if _URL_CONTROL.search(key) or _URL_CONTROL.search(value):
            raise BadInput(_control_message("The address"))
    # Read with the portal's one parser before Litestar reads them: these are
    # page numbers and ids, so no minus; ASCII digits only, and never converted
    # when longer than a column's number (int() raises on 5,000 digits).
    for name in _integer_query_names(request.route_handler):
        for value in query.getall(name, []):
            if value and whole_number(value) is None:
                raise BadInput(f"“{name}” must be a whole number from 0 to {MAX_INT:,}.")

    # A handler that declares a body (`data`, the JSON APIs) has Litestar read it with
    # its own checks; reading it here as a form would leave it nothing to read.
    takes_body = "data" in request.route_handler.parsed_fn_signature.parameters
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.content_type[0] in _FORM_TYPES and not takes_body:
        form = await request.form()
        for key, value in form.multi_items():
            if _FORM_CONTROL.search(key) or (isinstance(value, str) and _FORM_CONTROL.search(value)):
                named = key and not _FORM_CONTROL.search(key)
                raise BadInput(_control_message(f"The field “{key}”" if named else "A field name"))
