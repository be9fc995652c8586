"""The Admin Dashboard's kept parts under one version: `dashboard_figure.batch_version`
(migration 0030, raised by licence_batch) is raised also by licence_order and
subscription (a batch renewed or its renewal requested, a subscription's term that
renews a batch by itself) and by a customer's new name. The forecast, the 30/60/90-day
horizons and "Ending in the next 30 days" read nothing else that changes, but the
clock, which the web process keys them by.

PostgreSQL: one statement-level function over the transition tables, the company
column named by the trigger's argument; rows locked in company order first, as the
other dashboard_figure triggers do. A rename is a row trigger (a trigger on a column
list cannot have transition tables). SQLite: row triggers. Raw SQL on both engines,
nothing imported from the portal. Backward: drops the triggers and the function."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T23:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dashboard_figure.batch_version raised by licence_order, subscription and a customer's rename"


class Company(Table, tablename="company"):
    pass


_TABLES = ("licence_order", "subscription")
_EVENTS = ("insert", "update", "delete")
_TRIGGERS = [(f"{table}_version_{event}", table) for table in _TABLES for event in _EVENTS]
_RENAME = ("company_name_version", "company")

_POSTGRES = [
    """
    CREATE FUNCTION dashboard_version_of() RETURNS trigger LANGUAGE plpgsql AS $$
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
    """
    CREATE FUNCTION dashboard_version_of_name() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE dashboard_figure SET batch_version = nextval('dashboard_batch_version') WHERE company = NEW.id;
      RETURN NULL;
    END $$
    """,
    *(
        f"CREATE TRIGGER {table}_version_insert AFTER INSERT ON {table} "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_version_of()"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_version_of()"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_delete AFTER DELETE ON {table} "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_version_of()"
        for table in _TABLES
    ),
    "CREATE TRIGGER company_name_version AFTER UPDATE OF name ON company FOR EACH ROW "
    "WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION dashboard_version_of_name()",
]


def _sqlite_bump(company: str) -> str:
    return (
        "UPDATE dashboard_figure SET batch_version = "
        f"(SELECT COALESCE(MAX(batch_version), 0) + 1 FROM dashboard_figure) WHERE company = {company};"
    )


_SQLITE = [
    *(
        f"CREATE TRIGGER {table}_version_insert AFTER INSERT ON {table} BEGIN {_sqlite_bump('NEW.company')} END"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} BEGIN "
        f"{_sqlite_bump('NEW.company')} {_sqlite_bump('OLD.company')} END"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_delete AFTER DELETE ON {table} BEGIN {_sqlite_bump('OLD.company')} END"
        for table in _TABLES
    ),
    "CREATE TRIGGER company_name_version AFTER UPDATE OF name ON company WHEN OLD.name IS NOT NEW.name "
    f"BEGIN {_sqlite_bump('NEW.id')} END",
]


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _POSTGRES if _postgres() else _SQLITE:
            await Company.raw(statement)

    async def drop() -> None:
        for name, table in [*_TRIGGERS, _RENAME]:
            await Company.raw(f"DROP TRIGGER {name} ON {table}" if _postgres() else f"DROP TRIGGER {name}")
        if _postgres():
            await Company.raw("DROP FUNCTION dashboard_version_of()")
            await Company.raw("DROP FUNCTION dashboard_version_of_name()")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
