"""Co-terming: `licence_order.coterm_ends_at`. A request made while the company
holds a running batch may choose "End with the current term": the end of that
term is stored here, and assigning the order makes a batch that starts then and
ends at this instant instead of 12 months later. NULL: the guides' 12 months
from the assignment (every order made before this column).

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
column (orders still waiting then run 12 months from their assignment; batches
already made keep their ends)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T11:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "licence_order.coterm_ends_at: an order that ends with the company's current term"


class Company(Table, tablename="company"):
    pass


_CREATE = ['ALTER TABLE "licence_order" ADD COLUMN "coterm_ends_at" TIMESTAMPTZ DEFAULT null']
_DROP = ['ALTER TABLE "licence_order" DROP COLUMN "coterm_ends_at"']


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
