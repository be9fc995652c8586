"""A write transaction gives its connection back however it ends: a task
cancelled while its BEGIN was on the wire once left a PostgreSQL connection
idle inside a transaction, which made closing the pool wait forever (and on
SQLite would hold the write lock every other writer waits for)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from piccolo.engine.postgres import PostgresTransaction
from piccolo.engine.sqlite import SQLiteTransaction

from portal import db
from portal.tables import Company
from tests.support import open_transactions


@pytest.mark.parametrize("step", ["begin", "commit"])
async def test_a_transaction_interrupted_at_begin_or_commit_gives_its_connection_back(monkeypatch, step):
    kind = PostgresTransaction if db.is_postgres() else SQLiteTransaction
    original = getattr(kind, step)

    async def interrupted(self):
        await original(self)  # the server did it; the task hears no more of it
        raise asyncio.CancelledError

    monkeypatch.setattr(kind, step, interrupted)
    with pytest.raises(asyncio.CancelledError):
        async with db.write_transaction():
            await Company.raw("SELECT 1")
    monkeypatch.undo()

    assert db.engine().current_transaction.get() is None
    assert await open_transactions(grace_s=0) == []
    if not db.is_postgres():
        # Nobody holds SQLite's write lock: another connection takes it at once.
        other = sqlite3.connect(db.engine().connection_kwargs["database"], timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
    # The next writer is not kept waiting by the interrupted one's lock or connection.
    async with asyncio.timeout(5):
        async with db.write_transaction():
            await Company.raw("SELECT 1")
