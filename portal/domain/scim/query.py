"""The filters a list of Users takes, as SQL: what Entra ID and Okta ask
(`userName eq "…"`, `externalId eq "…"`) and a few more equalities, joined by
`and`. Anything else is refused with invalidFilter rather than answered wrong."""

from __future__ import annotations

from typing import Any

from scim2_models import InvalidFilterException, ScimFilter
from scim2_models.path.expressions import (
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    ValuePath,
)

from portal.domain.scim.schema import PortalUser

SUPPORTED = 'userName, externalId, emails.value or id with eq, joined by and (e.g. userName eq "ann@example.com")'


def _condition(attribute: str, value: Any) -> tuple[str, list[Any]]:
    text = value if isinstance(value, str) else None
    if text is None:
        raise InvalidFilterException(detail=f"{attribute} is compared with a string. Filters: {SUPPORTED}.")
    if attribute == "username":
        # A user the provider never wrote answers to their e-mail address.
        return (
            "(s.user_name_key = {} OR (s.id IS NULL AND u.email = {}))",
            [text.lower(), text.lower()],
        )
    if attribute == "externalid":
        return "s.external_id = {}", [text]
    if attribute in ("emails.value", "emails"):
        return "u.email = {}", [text.lower()]
    if attribute == "id":
        return ("u.id = {}", [int(text)]) if text.isascii() and text.isdigit() and len(text) < 10 else ("1 = 0", [])
    raise InvalidFilterException(detail=f"Filters: {SUPPORTED}.")


def _where(node: FilterNode) -> tuple[str, list[Any]]:
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        parts = [_where(term) for term in node.terms]
        return " AND ".join(sql for sql, _ in parts), [arg for _, args in parts for arg in args]
    if isinstance(node, ValuePath) and str(node.attr_path).lower() == "emails":
        inner = node.val_filter
        if isinstance(inner, Comparison) and str(inner.attr_path).lower() == "value" and inner.op == CompareOperator.eq:
            return _condition("emails.value", inner.value)
    if (
        isinstance(node, Comparison)
        and node.op == CompareOperator.eq
        and node.attr_path.uri in (None, PortalUser.__schema__)
    ):
        path = node.attr_path.attr + (f".{node.attr_path.sub_attr}" if node.attr_path.sub_attr else "")
        return _condition(path.lower(), node.value)
    raise InvalidFilterException(detail=f"Filters: {SUPPORTED}.")


def filter_sql(expression: str | None) -> tuple[str, list[Any]]:
    """A WHERE fragment over portal_user `u` and scim_user `s`, with its arguments."""
    if not expression or not expression.strip():
        return "1 = 1", []
    return _where(ScimFilter[PortalUser](expression).ast)
