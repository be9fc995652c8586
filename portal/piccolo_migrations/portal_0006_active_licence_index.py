from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T05:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "licence tabs count only active users: a partial index they can answer from alone"


class Company(Table, tablename="company"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def swap() -> None:
        await Company.raw(
            "CREATE INDEX IF NOT EXISTS portal_user_active_company_licence "
            "ON portal_user (company, licence_ends_at) WHERE active"
        )
        await Company.raw("DROP INDEX IF EXISTS portal_user_company_licence")

    manager.add_raw(swap)
    return manager
