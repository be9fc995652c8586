"""An order may renew a batch: `licence_order.renews_batch`. Assigning such an
order starts the new batch where the renewed one ends and carries its holders;
the Admin Dashboard reads "Renewed" from this link, not from whichever order
happened to be assigned later.

Renewals made before this column (a subscription's next term) are linked here:
an assigned order whose batch starts exactly where another batch of the same
company and product ends renews that batch (the first, if several end there).

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
index and the column (the links are lost; the batches and seats stay)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T10:32:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "licence_order.renews_batch: the batch an order renews"


class Company(Table, tablename="company"):
    pass


_CREATE = [
    # SET NULL, not RESTRICT: a batch is never deleted by the portal, and a test's
    # cleanup deleting batches before orders must not be refused by the link.
    'ALTER TABLE "licence_order" ADD COLUMN "renews_batch" INTEGER '
    'REFERENCES "licence_batch" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null',
    'CREATE INDEX "licence_order_renews_batch" ON "licence_order" ("renews_batch")',
    'UPDATE "licence_order" SET "renews_batch" = ('
    " SELECT MIN(ob.id) FROM licence_batch AS nb JOIN licence_batch AS ob"
    " ON ob.company = nb.company AND ob.product = nb.product AND ob.ends_at = nb.starts_at AND ob.id <> nb.id"
    ' WHERE nb."order" = licence_order.id'
    ") WHERE status = 'assigned'",
]
_DROP = [
    'DROP INDEX "licence_order_renews_batch"',
    'ALTER TABLE "licence_order" DROP COLUMN "renews_batch"',
]


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
