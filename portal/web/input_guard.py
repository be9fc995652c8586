"""One check of every request's input before any handler runs, so no route can
forget it: ids in the path within the range of their column, whole numbers a
handler declares within the range of an integer column, and no control
characters in the path, the query string or a form field.

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

# PostgreSQL `integer` (serial ids, quantities, page numbers after the guard).
MAX_INT = 2_147_483_647
# In a URL no control character has a use. In a form field, tab, line feed and
# carriage return are what a text box sends; every other C0 control, DEL and
# the C1 controls are refused (NUL above all: PostgreSQL rejects it in text).
_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WHOLE_NUMBER = re.compile(r"\s*[+-]?\d+\s*")
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


def in_int_range(value: int) -> bool:
    return -MAX_INT <= value <= MAX_INT


async def guard_input(request: Request) -> None:
    """Litestar `before_request` hook: raises NotFoundException or BadInput."""
    for value in request.path_params.values():
        if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= MAX_INT:
            raise NotFoundException("There is nothing at this address.")
        if isinstance(value, str) and _URL_CONTROL.search(value):
            raise BadInput(_control_message("The address"))

    query = request.query_params
    for key, value in query.multi_items():
        if _URL_CONTROL.search(key) or _URL_CONTROL.search(value):
            raise BadInput(_control_message("The address"))
    for name in _integer_query_names(request.route_handler):
        for value in query.getall(name, []):
            if _WHOLE_NUMBER.fullmatch(value) and not in_int_range(int(value)):
                raise BadInput(f"“{name}” must be a whole number between {-MAX_INT:,} and {MAX_INT:,}.")

    if request.method not in ("GET", "HEAD", "OPTIONS") and request.content_type[0] in _FORM_TYPES:
        form = await request.form()
        for key, value in form.multi_items():
            if _FORM_CONTROL.search(key) or (isinstance(value, str) and _FORM_CONTROL.search(value)):
                named = key and not _FORM_CONTROL.search(key)
                raise BadInput(_control_message(f"The field “{key}”" if named else "A field name"))
