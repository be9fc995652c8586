"""Reading a whole number a person typed, in one place for every form field,
query parameter and filter.

Python's `int()` is lenient in ways no field here wants: it takes other
scripts' digits ("٣", "７"), underscores ("1_000") and a plus sign, and it
raises past 4,300 digits instead of saying no. Only ASCII digits are a number
here, at most MAX_CHARS of them (leading zeros included), within what an
integer column holds on both engines."""

from __future__ import annotations

import re

# PostgreSQL `integer`: a larger value makes the query fail instead of matching nothing.
MAX_INT = 2_147_483_647
# Ten digits hold MAX_INT; the rest is room for leading zeros. Checked before
# any conversion, so a 5,000-digit value costs nothing and raises nothing.
MAX_CHARS = 20
_UNSIGNED = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def is_ascii_digits(typed: str) -> bool:
    """True for a non-empty run of 0-9 only (a card number's digits, a security code)."""
    return _UNSIGNED.fullmatch(typed) is not None


def is_decimal_text(typed: str) -> bool:
    """ASCII digits with at most one decimal point and a leading minus ("6000.50",
    ".5", "-1"): an amount as people type it. Decimal() also reads "٣", "1_000",
    "1e3" and "NaN", none of which is an amount typed in a form."""
    return _DECIMAL.fullmatch(typed) is not None


def whole_number(raw: object, *, signed: bool = False) -> int | None:
    """The number `raw` spells in ASCII digits, spaces around it aside, or None.

    `signed` allows one leading "-": for a form field whose rule in the domain
    says the range in the field's own words ("0 or more"), which tells the user
    more than "enter a whole number". Without it a minus is not a number."""
    if raw is None:
        return None
    typed = str(raw).strip()
    if len(typed) > MAX_CHARS or (_SIGNED if signed else _UNSIGNED).fullmatch(typed) is None:
        return None
    number = int(typed)
    return number if -MAX_INT <= number <= MAX_INT else None
