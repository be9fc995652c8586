"""One spreadsheet cell as an e-mail address, as portal_user.email stores it.

Cells come as people have them: spaces around, any case, `Name <address>`,
`mailto:` or Exchange's `smtp:` prefix, or a proxy-address list
(`SMTP:primary@x;smtp:alias@x`, whose upper-case SMTP: marks the primary).
Syntax is email-validator's; its domain check (IDNA) is cached per domain,
since a company's file has a handful of domains and 100,000 addresses."""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_local_part

_ANGLE = re.compile(r"<([^<>]*)>\s*$")
_SEPARATORS = re.compile(r"[;,\s]+")
_PREFIXES = ("mailto:", "smtp:", "sip:")
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain.lower()
    except EmailNotValidError:
        return None


def normalise(text: str) -> str | None:
    """A single address, checked and lower-cased; None if it is not one."""
    local, at, domain = text.rpartition("@")
    if not at or not local or len(text) > 254:
        return None
    if _PLAIN_LOCAL.fullmatch(local) and domain.isascii():
        checked_domain = _domain(domain)
        if checked_domain is None:
            return None
        try:
            validate_email_local_part(local, allow_smtputf8=True)
        except EmailNotValidError:
            return None
        address = f"{local}@{checked_domain}".lower()
        return address if len(address) <= 254 else None
    try:  # quoted local parts, international addresses: the library's full path
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _strip_prefix(text: str) -> str:
    lowered = text.lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            return text[len(prefix) :].strip()
    return text


def parse_cell(cell: str) -> tuple[str | None, str, bool]:
    """(address or None, display name if the cell gave one, whether the cell is a list).

    A list of addresses gives its primary (the `SMTP:` one) or else its first."""
    text = cell.strip().strip("\"'").strip()
    if not text:
        return None, "", False
    name = ""
    angle = _ANGLE.search(text)
    if angle:
        name = text[: angle.start()].strip().strip("\"'").strip()
        text = angle.group(1).strip()
    parts = [p for p in _SEPARATORS.split(text) if p]
    is_list = len(parts) > 1 or text[:5].lower() == "smtp:"
    if len(parts) > 1:
        primary = next((p for p in parts if p.startswith("SMTP:")), parts[0])
        text = primary
    elif parts:
        text = parts[0]
    return normalise(_strip_prefix(text)), name, is_list


def name_for(address: str, given: str) -> str:
    """A new learner's name: the one the cell gave, or the address's local part
    ("dana.wells" → "Dana Wells")."""
    if given:
        return given[:200]
    local = address.split("@", 1)[0]
    words = [w for w in re.split(r"[._+-]+", local) if w]
    return (" ".join(w.capitalize() for w in words) or local)[:200]
