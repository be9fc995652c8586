"""Reading form and query values leniently: a malformed number is "absent", and
the domain's validation says what is missing, next to the field."""

from __future__ import annotations

from datetime import date


def to_int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def to_date(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        return None


def text(value: object, limit: int = 200) -> str:
    return "" if value is None else str(value).strip()[:limit]
