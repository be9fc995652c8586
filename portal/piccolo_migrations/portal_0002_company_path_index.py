from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-22T04:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "prefix index on company.path for PostgreSQL"


class Company(Table, tablename="company"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def prefix_index() -> None:
        # LIKE '/1/7/%' uses a btree on PostgreSQL only with text_pattern_ops (the
        # database collation is not C). SQLite's LIKE is served by the plain index.
        if isinstance(Company._meta.db, PostgresEngine):
            await Company.raw("CREATE INDEX IF NOT EXISTS company_path_prefix ON company (path text_pattern_ops)")

    manager.add_raw(prefix_index)
    return manager
