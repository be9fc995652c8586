"""The key that signs the cursors of the keyset lists (Licenses tabs, Orders,
Requested Orders, Notifications, invoices), derived from the app's secret and not
it. Each list signs with its own scope too (portal/domain/keyset.py), so one key
serves them all."""

from __future__ import annotations

import hashlib

from litestar import Request


def list_cursor_key(request: Request) -> bytes:
    return hashlib.sha256(b"list-cursor:" + request.app.state.settings.secret_key.encode()).digest()
