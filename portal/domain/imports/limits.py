"""Where uploaded files are kept and how big one may be: handed in by whatever
starts the process (portal/services.py, from CSV_MAX_BYTES and the var directory
in Settings), so the import reads no settings of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Up to this many rows "Renew Licences" answers in the request; above, a job applies it.
JOB_ROWS = 2000


@dataclass(frozen=True)
class ImportFiles:
    """The folder of uploaded files (names as preview.receive gives them) and the
    largest file accepted, in bytes."""

    directory: Path
    max_bytes: int

    def path_of(self, stored_as: str) -> Path:
        return self.directory / stored_as

    @property
    def too_big_message(self) -> str:
        return (
            f"The file is over {size_words(self.max_bytes)}, the largest accepted. "
            "Split it into smaller files, or keep only the e-mail column."
        )


def size_words(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"
