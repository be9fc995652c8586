from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T06:35:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "fill licence_order.company_path; index Requested Orders by status and product"


class Company(Table, tablename="company"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def fill_and_index() -> None:
        await Company.raw(
            "UPDATE licence_order SET company_path = "
            "(SELECT path FROM company WHERE company.id = licence_order.company)"
        )
        # Requested Orders filtered by status and product, under a wing: the
        # count from the index alone, the newest page by walking it in order.
        await Company.raw(
            "CREATE INDEX licence_order_wing "
            "ON licence_order (status, product, requested_at DESC, id DESC, company_path)"
        )

    async def drop_index() -> None:
        await Company.raw("DROP INDEX IF EXISTS licence_order_wing")

    manager.add_raw(fill_and_index)
    manager.add_raw_backwards(drop_index)
    return manager
