"""portal_user.session_generation: how many times the user's sessions were
ended (a new password ends them all). A session keeps the number it was signed
in at, and is honoured only while the user's number is the same.

Raw SQL on both engines, nothing imported from the portal. Every existing user
starts at 0, as do the sessions already open (they hold no number), so the
upgrade signs nobody out. Backward: drops the column."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T10:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "portal_user.session_generation: a new password ends the user's other sessions"


class Company(Table, tablename="company"):
    pass


_ADD = ['ALTER TABLE "portal_user" ADD COLUMN "session_generation" INTEGER NOT NULL DEFAULT 0']
_DROP = ['ALTER TABLE "portal_user" DROP COLUMN "session_generation"']


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def add() -> None:
        for statement in _ADD:
            await Company.raw(statement)

    async def drop() -> None:
        for statement in _DROP:
            await Company.raw(statement)

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
