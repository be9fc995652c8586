"""Reading form and query values leniently: a malformed number is "absent", and
the domain's validation says what is missing, next to the field.

"Malformed" includes out of range: a number no integer column can hold, a
date outside 1900–2100; and digits other than ASCII's, which int() would read
(portal/domain/numbers.py). Passing them on would make the database fail (a 500),
not the form. Control characters never get here: the input guard refuses them
(portal/web/input_guard.py)."""

from __future__ import annotations

from datetime import date

from portal.domain.numbers import whole_number

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2100, 12, 31)


def to_int(value: object) -> int | None:
    # A minus is passed on: the field's rule then says its range ("0 or more").
    return whole_number(value, signed=True)


def to_date(value: object) -> date | None:
    try:
        day = date.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def text(value: object, limit: int = 200) -> str:
    return "" if value is None else str(value).strip()[:limit]
