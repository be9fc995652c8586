"""A CSV import's preview marked stale when its company's licences change.

`csv_import.stale` is set by triggers on licence_tally (a user of the company
added, moved, deactivated, or given another licence end) and licence_batch (seats
assigned, allocated or released), for the company's imports still "previewed".
Setting it only where it is not yet set makes every later change of the same
company cost an index lookup and no write. A new preview clears it.

On PostgreSQL the trigger locks the imports it marks in id order first, as the
dashboard figures' trigger does, so two writers of several companies take them
in the same order.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
triggers, the function and the column."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T10:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "csv_import.stale, set by triggers when the company's licences change"

WATCHED = ("licence_tally", "licence_batch")
_ADD = "ALTER TABLE csv_import ADD COLUMN stale BOOLEAN NOT NULL DEFAULT false"
_DROP_COLUMN = "ALTER TABLE csv_import DROP COLUMN stale"
_PREVIEWED = "status = 'previewed' AND NOT stale"


class Company(Table, tablename="company"):
    pass


_POSTGRES = [
    f"""
    CREATE FUNCTION csv_import_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT company FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT company FROM old_rows'
        ELSE 'SELECT company FROM new_rows UNION SELECT company FROM old_rows' END;
    BEGIN
      EXECUTE format(
        'SELECT 1 FROM csv_import WHERE company IN (%s) AND {_PREVIEWED.replace("'", "''")} ORDER BY id FOR UPDATE',
        changed);
      EXECUTE format(
        'UPDATE csv_import SET stale = true WHERE company IN (%s) AND {_PREVIEWED.replace("'", "''")}', changed);
      RETURN NULL;
    END $$
    """,
]
for _table in WATCHED:
    _POSTGRES += [
        f"CREATE TRIGGER {_table}_import_stale_insert AFTER INSERT ON {_table} "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION csv_import_mark_stale()",
        f"CREATE TRIGGER {_table}_import_stale_update AFTER UPDATE ON {_table} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION csv_import_mark_stale()",
        f"CREATE TRIGGER {_table}_import_stale_delete AFTER DELETE ON {_table} "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION csv_import_mark_stale()",
    ]
_TRIGGERS = [(f"{table}_import_stale_{event}", table) for table in WATCHED for event in ("insert", "update", "delete")]


def _sqlite_mark(company: str) -> str:
    return f"UPDATE csv_import SET stale = true WHERE company = {company} AND {_PREVIEWED};"


_SQLITE = []
for _table in WATCHED:
    _SQLITE += [
        f"CREATE TRIGGER {_table}_import_stale_insert AFTER INSERT ON {_table} BEGIN {_sqlite_mark('NEW.company')} END",
        f"CREATE TRIGGER {_table}_import_stale_update AFTER UPDATE ON {_table} BEGIN "
        f"{_sqlite_mark('NEW.company')} {_sqlite_mark('OLD.company')} END",
        f"CREATE TRIGGER {_table}_import_stale_delete AFTER DELETE ON {_table} BEGIN {_sqlite_mark('OLD.company')} END",
    ]


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in [_ADD, *(_POSTGRES if _postgres() else _SQLITE)]:
            await Company.raw(statement)

    async def drop() -> None:
        postgres = _postgres()
        for name, table in _TRIGGERS:
            await Company.raw(f"DROP TRIGGER {name} ON {table}" if postgres else f"DROP TRIGGER {name}")
        if postgres:
            await Company.raw("DROP FUNCTION csv_import_mark_stale()")
        await Company.raw(_DROP_COLUMN)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
