"""Indexes for the lists paged by cursor (portal/domain/keyset.py), each in the
list's order with its id last, so a page deep in a list is a seek to the cursor
and a walk of 26 entries, like the first page:

- invoices, newest made first: a customer's (its billing page, the Invoices tab
  filtered by customer) by (company, created_at, id); the wing's by (created_at, id);
- Notifications, newest queued first: (created_at, id);
- a customer's Orders tab, newest requested first: (company, requested_at, id).

The Licenses tabs (A→Z) have theirs already: portal_user (company, name, id).
Raw SQL on both engines, nothing imported from the portal. Backward: drops them."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T20:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes in the order of the invoice, notification and order lists paged by cursor"


class Company(Table, tablename="company"):
    pass


_INDEXES = {
    "invoice_company_created": '"invoice" ("company", "created_at", "id")',
    "invoice_created": '"invoice" ("created_at", "id")',
    "outbox_email_created_id": '"outbox_email" ("created_at", "id")',
    "licence_order_company_requested_id": '"licence_order" ("company", "requested_at", "id")',
}
_CREATE = [f"CREATE INDEX {name} ON {on}" for name, on in _INDEXES.items()]
_DROP = [f"DROP INDEX {name}" for name in _INDEXES]


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
