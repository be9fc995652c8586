from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-22T04:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite indexes for the licence tabs, order lists and the outbox"

# Each serves one hot query (docs/benchmarks.md):
INDEXES = [
    # the Active / Expired Licenses / Unlicensed tabs: status is a range on licence_ends_at
    # (replaced by a partial index in portal_0006_active_licence_index.py)
    "CREATE INDEX IF NOT EXISTS portal_user_company_licence ON portal_user (company, licence_ends_at)",
    # the same tabs, listed by name
    "CREATE INDEX IF NOT EXISTS portal_user_company_name ON portal_user (company, name, id)",
    # Requested Orders, newest first, per status and per customer
    "CREATE INDEX IF NOT EXISTS licence_order_status_requested ON licence_order (status, requested_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS licence_order_company_requested ON licence_order (company, requested_at DESC)",
    # a company's batches by end date (running batch that ends first; expiry notices)
    "CREATE INDEX IF NOT EXISTS licence_batch_company_ends ON licence_batch (company, ends_at)",
    # a user's seats, newest first (history, early renewal)
    'CREATE INDEX IF NOT EXISTS allocation_user_ends ON allocation ("user", ends_at)',
]


class Company(Table, tablename="company"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create_indexes() -> None:
        for statement in INDEXES:
            await Company.raw(statement)

    manager.add_raw(create_indexes)
    return manager
