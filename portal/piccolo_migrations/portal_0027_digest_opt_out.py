"""A manager may switch the weekly digest off: `portal_user.digest_off`, false
for everyone who had it. Raw SQL on both engines. Backward: drops the column."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T14:13:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "portal_user.digest_off: the manager switched the weekly digest off"


class Company(Table, tablename="company"):
    pass


_CREATE = ['ALTER TABLE "portal_user" ADD COLUMN "digest_off" BOOLEAN NOT NULL DEFAULT false']
_DROP = ['ALTER TABLE "portal_user" DROP COLUMN "digest_off"']


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
