"""Uploaded CSV files do not stay under var/imports/ for ever: the retention
job removes a file once its import is applied, or a week after the upload of a
preview never applied, and a file no import names; the preview itself stays,
and can still be counted again and renewed."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest

from portal.domain.errors import DomainError
from portal.domain.imports import apply as applying
from portal.domain.imports import preview, retention
from portal.jobs.import_files import IMPORT_FILE_CRON_JOBS
from portal.jobs.worker import WorkerSettings
from portal.tables import Allocation
from tests.test_imports_domain import FILE, FILES, NOW, actors, setup_north


async def _upload(tree, at) -> dict:
    customer, _ = await actors(tree)
    import_id = await preview.receive(customer, tree.north["id"], "u.csv", io.BytesIO(FILE.encode()), at, FILES)
    return await preview.get_import(customer, tree.north["id"], import_id)


def _aged(path, at) -> None:
    os.utime(path, (at.timestamp(), at.timestamp()))


async def test_files_no_longer_needed_are_removed_and_the_rest_kept(tree):
    running = await setup_north(tree)
    customer, _ = await actors(tree)
    old = await _upload(tree, NOW - retention.KEEP_FOR - timedelta(minutes=1))
    recent = await _upload(tree, NOW - retention.KEEP_FOR + timedelta(minutes=1))
    applied = await _upload(tree, NOW - timedelta(hours=1))
    await applying.apply(customer, tree.north["id"], applied["id"], NOW, FILES)
    # As if the process died before removing the applied import's file.
    FILES.path_of(applied["stored_as"]).write_bytes(FILE.encode())
    directory = FILES.directory
    orphan_old, orphan_new = (
        directory / f"{tree.north['id']}-{'a' * 24}.csv",
        directory / f"{tree.north['id']}-{'b' * 24}.csv",
    )
    other = directory / "README.txt"
    for path in (orphan_old, orphan_new, other):
        path.write_bytes(b"x@north.example\n")
    for path in (orphan_old, other):
        _aged(path, NOW - retention.KEEP_FOR - timedelta(days=1))
    _aged(orphan_new, NOW - timedelta(days=1))

    assert await retention.remove_old_files(NOW, FILES) == 3
    assert not FILES.path_of(old["stored_as"]).exists()
    assert not FILES.path_of(applied["stored_as"]).exists()
    assert not orphan_old.exists()
    assert FILES.path_of(recent["stored_as"]).exists() and orphan_new.exists() and other.exists()
    assert await retention.remove_old_files(NOW, FILES) == 0  # run again: nothing more

    # The old preview stays: counted again and renewed without its file; another column needs the file.
    with pytest.raises(DomainError, match="no longer here"):
        await preview.choose_column(customer, tree.north["id"], old["id"], 1, False, NOW, FILES)
    assert (await preview.refresh(customer, tree.north["id"], old["id"], NOW))["seated"] == 0  # applied's did it
    assert (await applying.apply(customer, tree.north["id"], old["id"], NOW, FILES))["renewed"] == 0
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 4
    orphan_new.unlink()
    other.unlink()


def test_the_retention_job_is_a_unique_cron_job_of_the_worker():
    names = [job.name for job in WorkerSettings.cron_jobs]
    assert "cron:remove_old_import_files" in names
    assert all(job.unique for job in IMPORT_FILE_CRON_JOBS)
