"""An index of paid invoices by payment date, for the billing tick's
scan of recent payments (settlement.provision_missed: paid invoices of the last
week without a "provision:<invoice>" claim). Partial, so it holds only paid
invoices: the issued and void ones the scan never wants cost nothing in it.

Raw SQL on both engines (PostgreSQL and SQLite read partial indexes alike),
nothing imported from the portal. Backward: drops the index."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-23T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index invoice_paid: paid invoices by paid_at"


class Company(Table, tablename="company"):
    pass


_CREATE = ['CREATE INDEX invoice_paid ON "invoice" ("paid_at") WHERE status = \'paid\'']
_DROP = ["DROP INDEX invoice_paid"]


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
