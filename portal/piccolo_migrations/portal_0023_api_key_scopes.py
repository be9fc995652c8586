"""API keys get scopes: `api_key.scopes`, comma-separated of read, orders and
billing. Every key made before reads (the entitlements question, and the lists of
/api/v1), as it could. Raw SQL on both engines. Backward: drops the column."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T14:09:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "api_key.scopes: what a key may do (read, orders, billing)"


class Company(Table, tablename="company"):
    pass


_CREATE = ['ALTER TABLE "api_key" ADD COLUMN "scopes" VARCHAR(100) NOT NULL DEFAULT \'read\'']
_DROP = ['ALTER TABLE "api_key" DROP COLUMN "scopes"']


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _CREATE:
            await Company.raw(statement)

    async def drop() -> None:
        for statement in _DROP:
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
