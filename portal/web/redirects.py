"""Where a handler may send the browser back to: paths of this site only."""

from __future__ import annotations


def local_path(path: str) -> str:
    """`path` if it is a path of this site, else "": never "//host/…" (another site to a
    browser), "/\\host" (the same, to some), a scheme or a bare name."""
    path = path.strip()
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else ""
