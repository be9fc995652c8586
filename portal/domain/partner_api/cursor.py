"""Cursor pagination: a page is the rows after the last id of the one before, so
page 2,000 costs what page 1 does. The cursor is that id, signed so that a
client cannot make one up and a changed one reads as "start again"."""

from __future__ import annotations

import base64
import hashlib
import hmac

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def limit_of(asked: int | None) -> int:
    return min(max(1, asked or DEFAULT_LIMIT), MAX_LIMIT)


def encode(last_id: int, secret: str) -> str:
    text = str(last_id)
    mac = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:16]
    return base64.urlsafe_b64encode(f"{text}.{mac}".encode()).decode().rstrip("=")


def decode(cursor: str | None, secret: str) -> int:
    """The id to continue after; 0 (the start) for no cursor or one not ours."""
    if not cursor:
        return 0
    try:
        text, _, mac = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(".")
    except (ValueError, UnicodeDecodeError):
        return 0
    expected = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:16]
    if not text.isdigit() or not hmac.compare_digest(mac, expected):
        return 0
    return int(text)
