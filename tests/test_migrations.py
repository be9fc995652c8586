"""Every migration steps forward, back and forward again, on the engine of the run.

The walk runs in a database of its own, in a child process (this module run as
`python -m tests.test_migrations`): Piccolo binds tables to the engine of
piccolo_conf at import, so this process, bound to the session's database,
cannot point them elsewhere. The child records the schema after each step; the
test below judges it:

- forwards: the tables are those the app declares (portal/piccolo_app.py), each
  with the columns its Table class names, and the catalogue is there;
- backwards: nothing is left but Piccolo's own `migration` table, empty for
  the portal (no table, index, trigger, function or sequence left behind);
- forwards again: the same schema as the first time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from pathlib import Path

import pytest

ENGINE = os.environ.get("PORTAL_TEST_DB", "sqlite")
PROJECT_DIR = Path(__file__).resolve().parent.parent
STEPS = ("forwards", "backwards", "forwards again")


@pytest.fixture
async def own_database_url(tmp_path):
    if ENGINE != "postgres":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite'}"
        return
    from tests.support import create_pg_database, drop_pg_database

    server = os.environ.get("PORTAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
    name = f"portal_migrations_{os.getpid()}"
    await create_pg_database(server, name)
    yield f"{server}/{name}"
    await drop_pg_database(server, name)


async def _walk_in_child(database_url: str, out: Path) -> dict:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.test_migrations",
        str(out),
        cwd=PROJECT_DIR,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    assert child.returncode == 0, output.decode(errors="replace")
    return json.loads(out.read_text())


async def test_every_migration_steps_forward_back_and_forward_again(own_database_url, tmp_path):
    from portal.domain.catalogue import PREMIUM, TRIAL
    from portal.piccolo_app import APP_CONFIG

    walk = await _walk_in_child(own_database_url, tmp_path / "walk.json")

    first = _step(walk, "forwards")
    declared = {
        table._meta.tablename: sorted(column._meta.db_column_name for column in table._meta.columns)
        for table in APP_CONFIG.table_classes
    }
    made = {table: sorted(column.split()[0] for column in columns) for table, columns in first["columns"].items()}
    assert {table: columns for table, columns in made.items() if table != "migration"} == declared
    assert {PREMIUM, TRIAL} <= set(first["products"])
    assert first["ran"] == walk["migration_ids"]

    back = _step(walk, "backwards")
    assert back["tables"] == ["migration"], "a backward step left tables behind"
    assert back["objects"] == walk["bookkeeping_objects"], "a backward step left indexes, triggers or functions"
    assert back["ran"] == []

    assert _step(walk, "forwards again") == first


async def test_a_database_from_before_the_baseline_is_refused_with_what_to_do(own_database_url):
    """A development database made by the migrations the baseline replaced lists
    their IDs, not the baseline's: the baseline must not run on top of its tables."""
    if ENGINE == "postgres":
        import asyncpg

        conn = await asyncpg.connect(own_database_url)
        try:
            await conn.execute("CREATE TABLE company (id SERIAL PRIMARY KEY)")
        finally:
            await conn.close()
    else:
        import sqlite3

        with sqlite3.connect(own_database_url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE company (id INTEGER PRIMARY KEY)")
    child = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "portal"),
        "migrate",
        cwd=PROJECT_DIR,
        env={**os.environ, "DATABASE_URL": own_database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await child.communicate())[0].decode(errors="replace")
    assert child.returncode != 0
    assert "made by the migrations before the baseline" in output
    assert "rm var/portal.sqlite" in output


def _step(walk: dict, step: str) -> dict:
    assert step in walk, f"the walk stopped before {step}"
    assert "error" not in walk[step], f"{step} failed:\n{walk[step]['error']}"
    return walk[step]


# --- The child: run with DATABASE_URL set to an empty database of its own --------------


async def _schema() -> dict:
    from portal import db
    from portal.tables import Company

    if db.is_postgres():
        tables = [
            r["name"]
            for r in await Company.raw(
                "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
            )
        ]
        columns = {
            table: [
                f"{r['column_name']} {r['data_type']} null={r['is_nullable']} default={r['column_default']}"
                for r in await Company.raw(
                    "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = {} ORDER BY ordinal_position",
                    table,
                )
            ]
            for table in tables
        }
        here = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        objects = await Company.raw(
            "SELECT 'relation ' || c.relkind::text || ' ' || c.relname || ' ' || "
            "coalesce(pg_get_indexdef(c.oid), '') AS object "
            f"FROM pg_class c WHERE c.relnamespace = {here} "
            "UNION ALL SELECT 'function ' || p.proname || ' ' || md5(p.prosrc) "
            f"FROM pg_proc p WHERE p.pronamespace = {here} "
            "UNION ALL SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
            f"AND c.relnamespace = {here} "
            "UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
            f"WHERE connamespace = {here} ORDER BY 1"
        )
    else:
        tables = [
            r["name"]
            for r in await Company.raw(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
            )
        ]
        columns = {
            table: [
                f"{r['name']} {r['type']} notnull={r['notnull']} default={r['dflt_value']}"
                for r in await Company.raw(f"PRAGMA table_info('{table}')")
            ]
            for table in tables
        }
        objects = await Company.raw(
            "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || coalesce(sql, '') AS object "
            "FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1"
        )
    products = []
    if "product" in tables:
        products = [r["code"] for r in await Company.raw("SELECT code FROM product ORDER BY id")]
    ran = [r["name"] for r in await Company.raw("SELECT name FROM migration WHERE app_name = 'portal'")]
    return {
        "tables": tables,
        "columns": {table: sorted(cols) for table, cols in columns.items()},
        "objects": [r["object"] for r in objects],
        "products": products,
        "ran": sorted(ran),
    }


async def _bookkeeping_objects() -> list[str]:
    """What Piccolo's own `migration` table brings, in an otherwise empty database."""
    schema = await _schema()
    assert schema["tables"] == ["migration"], f"the database was not empty: {schema['tables']}"
    return schema["objects"]


async def _walk(out: Path) -> None:
    from piccolo.apps.migrations.commands.backwards import run_backwards
    from piccolo.apps.migrations.commands.base import BaseMigrationManager
    from piccolo.apps.migrations.commands.forwards import run_forwards
    from piccolo.apps.migrations.tables import Migration

    from portal.piccolo_app import APP_CONFIG

    await Migration.create_table(if_not_exists=True)
    record: dict = {
        "bookkeeping_objects": await _bookkeeping_objects(),
        "migration_ids": sorted(BaseMigrationManager().get_migration_modules(APP_CONFIG.migrations_folder_path)),
    }
    steps = {
        "forwards": lambda: run_forwards("portal"),
        "backwards": lambda: run_backwards("portal", migration_id="all", auto_agree=True),
        "forwards again": lambda: run_forwards("portal"),
    }
    # A step that fails is recorded and ends the walk, so the test can say which
    # step failed after which state, rather than only that the child did.
    for step in STEPS:
        try:
            result = await steps[step]()
            if not result.success:
                raise RuntimeError(result.message)
        except Exception:
            record[step] = {"error": traceback.format_exc()}
            break
        record[step] = await _schema()
    out.write_text(json.dumps(record))


if __name__ == "__main__":
    asyncio.run(_walk(Path(sys.argv[1])))
