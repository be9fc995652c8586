"""Uploaded files are not kept for ever under var/imports/.

A file is needed only while its import is "previewed" (to show its first rows
and to read it again with another column). Once applied or queued, the rows in
csv_import_row hold all that is shown; a preview never applied keeps its file
KEEP_FOR after the upload. A file no import names (a process that died between
writing it and recording the import) goes after the same time. The import row
and its rows stay: a preview whose file is gone can still be counted again and
renewed; only choosing another column needs the file uploaded again.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path

from portal.domain.imports.limits import ImportFiles
from portal.tables.imports import CsvImport

KEEP_FOR = timedelta(days=7)
CHUNK = 1000
# The names preview.receive gives: "<company>-<24 hex>.csv"; nothing else in the folder is touched.
_STORED_NAME = re.compile(r"\d+-[0-9a-f]{24}\.csv")


async def remove_old_files(now: datetime, files: ImportFiles, keep_for: timedelta = KEEP_FOR) -> int:
    """Remove the files under `files` no longer needed; returns how many were removed.
    Safe to run again or in two workers at once: a file already gone is skipped."""
    directory = files.directory
    cutoff = now - keep_for
    removed = 0
    while True:
        done_with = (
            await CsvImport.select(CsvImport.id, CsvImport.stored_as)
            .where((CsvImport.stored_as != "") & ((CsvImport.status != "previewed") | (CsvImport.created_at < cutoff)))
            .limit(CHUNK)
        )
        if not done_with:
            break
        for row in done_with:
            removed += _unlink(directory / row["stored_as"])
        await CsvImport.update({CsvImport.stored_as: ""}).where(CsvImport.id.is_in([r["id"] for r in done_with]))
    if directory.is_dir():
        old = [
            entry
            for entry in os.scandir(directory)
            if _STORED_NAME.fullmatch(entry.name) and entry.stat().st_mtime < cutoff.timestamp()
        ]
        for start in range(0, len(old), CHUNK):
            names = [entry.name for entry in old[start : start + CHUNK]]
            named = await CsvImport.select(CsvImport.stored_as).where(CsvImport.stored_as.is_in(names))
            kept = {row["stored_as"] for row in named}
            removed += sum(_unlink(directory / name) for name in names if name not in kept)
    return removed


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except FileNotFoundError:
        return 0
