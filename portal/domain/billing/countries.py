"""The countries a billing address may name: ISO 3166-1, kept as the alpha-2 code
("GB"), shown by name ("United Kingdom")."""

from __future__ import annotations

from functools import cache

import pycountry

from portal.domain.errors import ValidationFailed

# Codes people type that ISO 3166 reserves for something else or does not assign:
# the United Kingdom is "GB" in ISO 3166, though "UK" is what most people write.
_ALIASES = {"UK": "GB"}


@cache
def countries() -> tuple[tuple[str, str], ...]:
    """(code, name) of every country, by name, for the address form's list."""
    named = ((c.alpha_2, getattr(c, "common_name", c.name)) for c in pycountry.countries)
    return tuple(sorted(named, key=lambda pair: pair[1].casefold()))


@cache
def _names() -> dict[str, str]:
    return dict(countries())


def country_name(code: str | None) -> str:
    """The country's name; a code no country has (an address kept before the list) as it was kept."""
    code = (code or "").strip()
    return _names().get(code.upper(), code)


def known_code(value: str | None) -> str:
    """The code of the country `value` names ("gb", "UK" → "GB"), or "" if none does."""
    code = (value or "").strip().upper()
    code = _ALIASES.get(code, code)
    return code if code in _names() else ""


def check_country(value: str) -> str:
    """The country's alpha-2 code, or ValidationFailed {"country": why}."""
    code = known_code(value)
    if code:
        return code
    if not value.strip():
        raise ValidationFailed({"country": "Choose the country from the list."})
    # Only what the form sent is named, cut short: a tampered form may send anything.
    raise ValidationFailed({"country": f"“{value.strip()[:40]}” is not a country in the list: choose one."})
