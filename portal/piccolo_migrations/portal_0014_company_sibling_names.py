from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-23T12:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "company names are unique among siblings, case-insensitively (a unique index)"

# Two "Create Company" posts at once (a double click) both passed the check in
# the code and made two companies. The database now holds the rule: no two
# companies with the same parent share a name, whatever the case. Top partners
# have no parent; coalesce(parent, 0) makes them siblings of each other (a NULL
# would make every one distinct). Same statement on both engines: each indexes
# expressions. SQLite's lower() folds ASCII only; the code's check before the
# insert folds the rest.
INDEX = "company_sibling_name"
_CREATE = f"CREATE UNIQUE INDEX {INDEX} ON company (coalesce(parent, 0), lower(name))"
# Rows made before the rule: every duplicate but the oldest gets its id appended,
# so the index can be built and no company is lost.
_RENAME_DUPLICATES = (
    "UPDATE company SET name = substr(name, 1, 180) || ' (' || id || ')' "
    "WHERE id NOT IN (SELECT min(id) FROM company GROUP BY coalesce(parent, 0), lower(name))"
)


class Company(Table, tablename="company"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        await Company.raw(_RENAME_DUPLICATES)
        await Company.raw(_CREATE)

    async def drop() -> None:
        await Company.raw(f"DROP INDEX IF EXISTS {INDEX}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
