"""The Admin Dashboard's forecast, kept under a version: `dashboard_figure.batch_version`,
a stamp that triggers on licence_batch raise for the companies whose batches a
statement inserts, updates or deletes. The dashboard reads the wing's highest stamp
(with its count of rows and sum of ids) in the statement it already runs, and
counts the forecast again only when that changes or the day does.

The stamp is global and only grows (PostgreSQL: a sequence; SQLite: one above the
highest), so the wing's highest stamp changes whenever one of its batches does.
On PostgreSQL the rows are locked in company order first, as the figures'
trigger does, so the two triggers never wait on each other in opposite orders.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
triggers, the function, the sequence and the column."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T20:02:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dashboard_figure.batch_version: the forecast's version, raised by licence_batch triggers"


class Company(Table, tablename="company"):
    pass


_EVENTS = ("insert", "update", "delete")
_TRIGGERS = [f"licence_batch_version_{event}" for event in _EVENTS]

_POSTGRES = [
    'ALTER TABLE "dashboard_figure" ADD COLUMN "batch_version" BIGINT NOT NULL DEFAULT 0',
    "CREATE SEQUENCE dashboard_batch_version",
    """
    CREATE FUNCTION dashboard_batch_version() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT company FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT company FROM old_rows'
        ELSE 'SELECT company FROM new_rows UNION SELECT company FROM old_rows' END;
    BEGIN
      EXECUTE format('SELECT 1 FROM dashboard_figure WHERE company IN (%s) ORDER BY company FOR UPDATE', changed);
      EXECUTE format(
        'UPDATE dashboard_figure SET batch_version = nextval(''dashboard_batch_version'') WHERE company IN (%s)',
        changed);
      RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER licence_batch_version_insert AFTER INSERT ON licence_batch "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_batch_version()",
    "CREATE TRIGGER licence_batch_version_update AFTER UPDATE ON licence_batch "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_batch_version()",
    "CREATE TRIGGER licence_batch_version_delete AFTER DELETE ON licence_batch "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_batch_version()",
]


def _sqlite_bump(company: str) -> str:
    return (
        "UPDATE dashboard_figure SET batch_version = "
        f"(SELECT COALESCE(MAX(batch_version), 0) + 1 FROM dashboard_figure) WHERE company = {company};"
    )


_SQLITE = [
    'ALTER TABLE "dashboard_figure" ADD COLUMN "batch_version" INTEGER NOT NULL DEFAULT 0',
    "CREATE TRIGGER licence_batch_version_insert AFTER INSERT ON licence_batch "
    f"BEGIN {_sqlite_bump('NEW.company')} END",
    "CREATE TRIGGER licence_batch_version_update AFTER UPDATE ON licence_batch BEGIN "
    f"{_sqlite_bump('NEW.company')} {_sqlite_bump('OLD.company')} END",
    "CREATE TRIGGER licence_batch_version_delete AFTER DELETE ON licence_batch "
    f"BEGIN {_sqlite_bump('OLD.company')} END",
]


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _POSTGRES if _postgres() else _SQLITE:
            await Company.raw(statement)

    async def drop() -> None:
        if _postgres():
            for name in _TRIGGERS:
                await Company.raw(f"DROP TRIGGER {name} ON licence_batch")
            await Company.raw("DROP FUNCTION dashboard_batch_version()")
            await Company.raw("DROP SEQUENCE dashboard_batch_version")
        else:
            for name in _TRIGGERS:
                await Company.raw(f"DROP TRIGGER {name}")
        await Company.raw('ALTER TABLE "dashboard_figure" DROP COLUMN "batch_version"')

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
