"""A partner's template rendered where it can do no harm: Jinja's immutable
sandbox, no attribute or item access at all (every field is a plain value), no
globals but `link`, a short list of filters, and every name checked against the
kind's fields before the template is saved. A refusal names the line at fault."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from portal.domain.outbox import link

SUBJECT_LIMIT = 300
BODY_LIMIT = 20_000
FILTERS = ("day", "short_day", "upper", "lower", "title", "capitalize", "trim", "default", "round", "int")
_TEMPLATE_FILE = "<partner template>"


@dataclass(frozen=True)
class Refusal:
    """Why a template cannot be used, and where."""

    field: str  # "subject" or "body"
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"Line {self.line}: " if self.line else ""
        return f"{where}{self.message}"


class TemplateRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class _Sandbox(ImmutableSandboxedEnvironment):
    """Reaching into a value is refused outright: a field is a plain value, so
    `x.y`, `x['y']` and `''.__class__` have nothing to offer but a way out."""

    # `9**9**9` or `reason * 10**9` would hold a worker for good.
    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" or not all(isinstance(side, (int, float)) for side in (left, right)):
            raise SecurityError(f"{operator} is only for multiplying numbers")
        if max(abs(left), abs(right)) > 1_000_000_000:
            raise SecurityError("numbers that large are not multiplied here")
        return left * right

    def getattr(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"{attribute!r} cannot be reached from a field")

    def getitem(self, obj: Any, argument: Any) -> Any:
        raise SecurityError("a field cannot be indexed")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if __obj is not link:
            raise SecurityError("only link(...) can be called")
        return super().call(__context, __obj, *args, **kwargs)


@cache
def _env() -> _Sandbox:
    # Imported here: the e-mails' content imports this module to render partners' words.
    from portal.domain.emails.content import day, short_day

    environment = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    own = {"day": day, "short_day": short_day}
    environment.filters = {name: own.get(name) or environment.filters[name] for name in FILTERS}
    environment.tests = {name: environment.tests[name] for name in ("defined", "none", "number", "string")}
    environment.globals = {"link": link}
    return environment


def _first_line(tree: nodes.Node, wanted: type[nodes.Node] | tuple[type[nodes.Node], ...]) -> nodes.Node | None:
    return next(iter(tree.find_all(wanted)), None)


def check(field: str, source: str, allowed: tuple[str, ...]) -> Any:
    """The compiled template, or TemplateRefused naming the line at fault:
    bad syntax, a name that is not one of `allowed`, reaching into a value."""
    limit = SUBJECT_LIMIT if field == "subject" else BODY_LIMIT
    if not source.strip():
        raise TemplateRefused(Refusal(field, None, "Write something: it cannot be empty."))
    if len(source) > limit:
        raise TemplateRefused(Refusal(field, None, f"Use at most {limit:,} characters."))
    env = _env()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as error:
        raise TemplateRefused(Refusal(field, error.lineno, error.message or "the template cannot be read")) from None
    reaching = _first_line(tree, (nodes.Getattr, nodes.Getitem))
    if reaching is not None:
        raise TemplateRefused(
            Refusal(field, reaching.lineno, "a field is used as it is: nothing can be reached from it with . or [ ]")
        )
    looping = _first_line(tree, (nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Pow))
    if looping is not None:
        raise TemplateRefused(
            Refusal(field, looping.lineno, "loops, macros and powers are not available; use if, set and the fields")
        )
    stored = {node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name not in allowed and node.name not in stored and node.name != "link":
            raise TemplateRefused(
                Refusal(field, node.lineno, f"there is no field {node.name!r} in this e-mail; use one of those listed")
            )
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "link"):
            raise TemplateRefused(Refusal(field, call.lineno, "only link(...) can be called"))
    try:
        return env.from_string(source)
    except TemplateSyntaxError as error:  # an unknown filter or test
        raise TemplateRefused(Refusal(field, error.lineno, error.message or "the template cannot be read")) from None


def _line_of_failure() -> int | None:
    """The template's line in the traceback of the exception being handled."""
    tb = sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in (_TEMPLATE_FILE, "<template>"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(field: str, template: Any, context: dict[str, Any]) -> str:
    """Render a checked template; a failure on these values is TemplateRefused with its line."""
    try:
        return cast("str", template.render(context))
    except (TemplateError, SecurityError, ArithmeticError, TypeError, ValueError) as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        raise TemplateRefused(Refusal(field, _line_of_failure(), message)) from None


def render_pair(
    subject: str, body: str, allowed: tuple[str, ...], context: dict[str, Any], base_url: str
) -> tuple[str, str]:
    """Subject (on one line) and text of a partner's template over `context`, its
    links under `base_url` (not a field: the template reaches it through `link`)."""
    subject_template = check("subject", subject, allowed)
    body_template = check("body", body, allowed)
    context = context | {"base_url": base_url}
    rendered_subject = " ".join(render("subject", subject_template, context).split())
    if not rendered_subject:
        raise TemplateRefused(Refusal("subject", None, "The subject comes out empty."))
    return rendered_subject, render("body", body_template, context)
