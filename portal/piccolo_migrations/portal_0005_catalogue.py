from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-22T04:35:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the licence catalogue: Premium (12 months) and the 30-day Free trial"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def seed() -> None:
        from portal.domain.catalogue import ensure_catalogue

        await ensure_catalogue()

    manager.add_raw(seed)
    return manager
