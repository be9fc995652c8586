"""The import's settings, read once from the environment."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from portal.settings import get_settings

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Up to this many rows "Renew Licences" answers in the request; above, a job applies it.
JOB_ROWS = 2000


@cache
def max_bytes() -> int:
    """CSV_MAX_BYTES: the largest file accepted (default 20 MB)."""
    value = (os.environ.get("CSV_MAX_BYTES") or "").strip()
    return int(value) if value else DEFAULT_MAX_BYTES


def imports_dir() -> Path:
    return get_settings().var_dir / "imports"


def size_words(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"
