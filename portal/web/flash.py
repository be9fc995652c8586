"""Messages that say what an action did, kept in the session until a page shows them.

The action that succeeded sets them; the next full page (layout.html) shows them
once. Never taken from the URL: a link can carry any `?renewed=5000` it likes."""

from __future__ import annotations

from typing import Literal

from litestar.connection import ASGIConnection

KEY = "flash"
Kind = Literal["ok", "error"]


def flash(request: ASGIConnection, text: str, kind: Kind = "ok") -> None:
    # A new dict and a new list: the session is written back only when it differs
    # from what was loaded, and an in-place append would compare equal.
    session = dict(request.session)
    session[KEY] = [*session.get(KEY, []), {"kind": kind, "text": text}]
    request.set_session(session)


def take_flashes(request: ASGIConnection) -> list[dict[str, str]]:
    """The messages waiting for this session, removed from it: shown once."""
    if KEY not in request.session:
        return []
    session = dict(request.session)
    messages = session.pop(KEY)
    request.set_session(session)
    return messages
