"""Engine differences in one place: write locks, bulk insert, migrations, pool.

PostgreSQL serialises writers with row locks (SELECT ... FOR UPDATE); SQLite has
no row locks, so a writing transaction takes the database's write lock up front
(BEGIN IMMEDIATE) and concurrent writers queue on the busy timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType
from piccolo.query import Select
from piccolo.table import Table

from portal.tables import Company

# asyncpg caps one statement at 32,767 bind parameters.
_MAX_PARAMS = 32_000


def engine() -> Engine:
    return Company._meta.db


def is_postgres() -> bool:
    return isinstance(engine(), PostgresEngine)


@asynccontextmanager
async def write_transaction() -> AsyncIterator[None]:
    db = engine()
    outer = db.current_transaction.get()
    try:
        if isinstance(db, SQLiteEngine):
            async with _released(db.transaction(transaction_type=TransactionType.immediate)):
                yield
        else:
            async with _released(db.transaction()):
                yield
    finally:
        # When the rollback itself fails (the server went away mid-transaction),
        # Piccolo leaves the dead transaction as the task's current one, and every
        # later query of the task (a job's in-process retry) would go to it.
        if db.current_transaction.get() is not outer:
            db.current_transaction.set(outer)


@asynccontextmanager
async def _released(transaction: PostgresTransaction | SQLiteTransaction) -> AsyncIterator[None]:
    """Piccolo's transaction, its connection given back however it ends. Piccolo
    keeps the connection when its BEGIN, COMMIT or ROLLBACK is interrupted (a
    task cancelled mid-BEGIN, a server gone): it then stays open inside its
    transaction (on SQLite holding the write lock every writer waits for), and
    closing PostgreSQL's pool waits for it forever. Giving it back rolls back
    what it still holds; giving back one Piccolo already gave back does nothing."""
    try:
        async with transaction:
            yield
    except BaseException:
        connection = getattr(transaction, "connection", None)
        pool = getattr(transaction.engine, "pool", None)
        if connection is not None and transaction._parent is None:
            if pool is not None:
                await pool.release(connection)
            elif not (is_closed := getattr(connection, "is_closed", None)) or not is_closed():
                await connection.close()
        raise


@asynccontextmanager
async def savepoint() -> AsyncIterator[None]:
    """Inside the current write transaction: what the block wrote is undone if it
    raises (ROLLBACK TO SAVEPOINT, both engines), and the transaction goes on.
    A rule that refuses halfway (an order placed, then its assignment refused)
    leaves nothing behind, while the caller still records the refusal."""
    transaction = engine().current_transaction.get()
    if transaction is None:
        raise RuntimeError("savepoint needs a write transaction")
    point = await transaction.savepoint()
    try:
        yield
    except Exception:  # a cancelled task's transaction is rolled back whole
        await point.rollback_to()
        raise
    await point.release()


def for_update(query: Select, of: type[Table] | None = None) -> Select:
    """Lock the selected rows (of table `of`, when the query joins) until the
    transaction ends, on PostgreSQL; on SQLite the immediate transaction already
    holds the only write lock."""
    if not is_postgres():
        return query
    return query.lock_rows(of=(of,)) if of else query.lock_rows()


async def lock_company(company_id: int) -> dict | None:
    """The company's row, locked until the transaction ends (PostgreSQL: FOR
    UPDATE; SQLite: the immediate transaction already holds the only write
    lock); None if there is no such company. Every writer of a company's users
    and seats takes this lock first, so they queue per company and always take
    the rows under it in the same order. One statement, the row included: the
    caller checks access with it instead of reading it again."""
    if engine().current_transaction.get() is None:
        raise RuntimeError("lock_company needs a write transaction")
    lock = " FOR UPDATE" if is_postgres() else ""
    rows = await Company.raw("SELECT * FROM company WHERE id = {}" + lock, company_id)
    return rows[0] if rows else None


def skip_locked(of: str = "") -> str:
    """The clause that makes concurrent workers claim disjoint rows on PostgreSQL
    (` FOR UPDATE [OF alias] SKIP LOCKED`); "" on SQLite, where the immediate
    transaction already holds the only write lock."""
    if not is_postgres():
        return ""
    return f" FOR UPDATE OF {of} SKIP LOCKED" if of else " FOR UPDATE SKIP LOCKED"


async def insert_many(table: type[Table], rows: Sequence[Table]) -> None:
    if not rows:
        return
    per_row = len(table._meta.columns)
    chunk = max(1, _MAX_PARAMS // per_row)
    for start in range(0, len(rows), chunk):
        await table.insert(*rows[start : start + chunk])


def is_unique_violation(error: BaseException, name: str = "") -> bool:
    """The database refused a row for a unique index: asyncpg says SQLSTATE 23505
    and names the constraint; sqlite3 says "UNIQUE constraint failed: <table.column
    or index 'name'>". `name`, when given, must be part of what the engine names."""
    if getattr(error, "sqlstate", None) == "23505":
        return name in (getattr(error, "constraint_name", None) or "")
    return isinstance(error, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(error) and name in str(error)


async def ping() -> bool:
    try:
        await Company.raw("SELECT 1")
        return True
    except Exception:
        return False


async def _keep_session(connection) -> None:
    """asyncpg's default reset sends RESET ALL, UNLISTEN *, CLOSE ALL and an
    advisory unlock every time a connection goes back to the pool: a round trip
    per query. The portal leaves no session state behind (no SET, LISTEN,
    advisory locks or cursors outside a transaction), and asyncpg still rolls
    back a transaction left open before calling this."""


async def open_pool(max_size: int = 10) -> bool:
    """Open the PostgreSQL pool unless one is open; returns whether this call
    opened it, so the caller that opened it is the one that closes it."""
    db = engine()
    if isinstance(db, PostgresEngine):
        if db.pool is not None:
            return False
        await db.start_connection_pool(min_size=1, max_size=max_size, reset=_keep_session)
        return True
    # WAL lets readers go on while one writer holds the lock.
    await Company.raw("PRAGMA journal_mode=WAL")
    return False


async def close_pool() -> None:
    db = engine()
    if isinstance(db, PostgresEngine) and db.pool is not None:
        await db.close_connection_pool()


async def migrate() -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = await run_forwards("portal")
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}")


def contains(column_sql: str, text: str) -> WhereRaw:
    """Case-insensitive substring match of user text, with % and _ taken literally
    (SQLite's LIKE has no default escape character, so it is named)."""
    literal = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return WhereRaw(f"lower({column_sql}) LIKE {{}} ESCAPE '\\'", f"%{literal}%")


# --- The outbox: claims for delivery workers, timestamps in INSERT … SELECT ---------


def timestamp_param() -> str:
    """A bound timestamp where nothing gives it a type (an INSERT … SELECT's
    list): PostgreSQL needs the cast; SQLite keeps Piccolo's text form, which a
    CAST would turn into a number."""
    return "CAST({} AS timestamptz)" if is_postgres() else "{}"


# SQL types of the columns `rows_table` takes.
_ROW_TYPES = {"int": "integer", "time": "timestamptz", "text": "text"}


def rows_table(types: Sequence[str], rows: Sequence[tuple]) -> tuple[str, list]:
    """Many rows sent with one statement as a table to join, its columns
    column1, column2 …; `types` from "int", "time", "text". Returns the SQL (a
    subquery, to alias) and its bound values. PostgreSQL: one array per column
    (four values whatever the count: no parameter cap, and a statement asyncpg
    prepares once); SQLite: a VALUES list, in calls of up to a few thousand rows."""
    if is_postgres():
        arrays = ", ".join(f"CAST({{}} AS {_ROW_TYPES[t]}[])" for t in types)
        names = ", ".join(f"column{i + 1}" for i in range(len(types)))
        return f"(SELECT * FROM unnest({arrays}) AS r({names}))", [list(col) for col in zip(*rows, strict=True)]
    one = "(" + ", ".join("CAST({} AS integer)" if t == "int" else "{}" for t in types) + ")"
    return f"(VALUES {', '.join([one] * len(rows))})", [value for row in rows for value in row]


def rows_per_statement(columns: int) -> int:
    """How many rows one `rows_table` may carry: PostgreSQL's arrays have no cap;
    SQLite binds every value and stops at 32,766 of them."""
    return 1_000_000 if is_postgres() else 20_000 // max(1, columns)


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A timestamp read by hand-written SQL: PostgreSQL and Piccolo's SQLite
    converters give a datetime; an expression SQLite cannot type gives its text."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def as_json(sql: str) -> str:
    """Text (a column of a scratch table, say) written into a JSON column by an
    INSERT … SELECT: PostgreSQL needs the cast; SQLite stores JSON as text."""
    return f"CAST({sql} AS json)" if is_postgres() else sql


async def claim_outbox(now, lease_until, token: str, limit: int) -> list[dict]:
    """Claim up to `limit` due, queued e-mails for one worker: each gets `token`
    and a lease until `lease_until`, and one more attempt counted. A row whose
    lease has run out (its worker died before finishing) is due again.

    PostgreSQL: rows another worker is claiming at this instant are skipped
    (FOR UPDATE SKIP LOCKED), so workers never wait on each other nor take the
    same row. SQLite: the write lock is taken first (BEGIN IMMEDIATE), so the
    choice and the claim are one step that no other writer can come between."""
    skip_locked = " FOR UPDATE SKIP LOCKED" if is_postgres() else ""
    sql = (
        "UPDATE outbox_email SET claim_token = {}, claimed_until = {}, attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM outbox_email WHERE status = 'queued' "
        "AND (next_attempt_at IS NULL OR next_attempt_at <= {}) "
        "AND (claimed_until IS NULL OR claimed_until < {}) "
        f"ORDER BY id LIMIT {int(limit)}{skip_locked}) "
        "RETURNING *"
    )
    async with write_transaction():
        rows = await Company.raw(sql, token, lease_until, now, now)
    return sorted(rows, key=lambda row: row["id"])


def commit_lazily(where: Combinable) -> Combinable:
    """`where`, and on PostgreSQL a clause that makes the statement's own
    commit not wait for the disk (synchronous_commit off for this one
    transaction, set from inside the statement: no BEGIN/SET/COMMIT round
    trips). The row is visible to everyone at once, and lost only if the
    database server itself crashes within a fraction of a second. For records
    that are safe to redo, like "this e-mail was sent", where an fsync per row
    would cost 3 ms of a 4 ms message. SQLite: `where` unchanged."""
    if not is_postgres():
        return where
    return where & WhereRaw("set_config('synchronous_commit', 'off', true) IS NOT NULL")


# --- Bulk load of a file's rows (CSV imports) -------------------------------------


async def copy_rows(table: str, columns: Sequence[str], records: Sequence[tuple]) -> None:
    """Append `records` to `table`, inside the current write transaction: COPY on
    PostgreSQL (asyncpg's copy_records_to_table, no statement per row, no
    parameter cap), one prepared INSERT run for every row on SQLite."""
    if not records:
        return
    db = engine()
    transaction = db.current_transaction.get()
    if transaction is None:
        raise RuntimeError("copy_rows needs a write transaction")
    if isinstance(db, PostgresEngine):
        await transaction.connection.copy_records_to_table(table, records=records, columns=list(columns))
        return
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    await transaction.connection.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', records)


async def scratch_table(name: str, columns_sql: str) -> None:
    """A temporary table for the current write transaction only, on its
    connection: PostgreSQL drops it at commit; SQLite's goes with the
    transaction's connection (dropped first if a failed run left one)."""
    if is_postgres():
        await Company.raw(f"CREATE TEMP TABLE {name} ({columns_sql}) ON COMMIT DROP")
    else:
        await Company.raw(f"DROP TABLE IF EXISTS temp.{name}")
        await Company.raw(f"CREATE TEMP TABLE {name} ({columns_sql})")


async def roomy_sorts(megabytes: int = 64) -> None:
    """Let the current transaction sort in memory (PostgreSQL's work_mem, for this
    transaction only): matching a 100,000-row file sorts its addresses, which at
    the default 4 MB spills to disk. SQLite: nothing to set."""
    if is_postgres():
        await Company.raw("SELECT set_config('work_mem', {}, true)", f"{int(megabytes)}MB")
