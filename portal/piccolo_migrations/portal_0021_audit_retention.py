"""The audit log people can read: `audit_retention`, one row per partner or
sub-partner that chose how long its audit log is kept (no row: the company above
decides, and with none the default of 24 months); and an index on
audit_entry (at, id), the order the log is read in, page by page from a cursor.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
table and the index (every log is then kept for the default)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:07:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit_retention: how long a partner keeps its audit log; audit_entry (at, id) index"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "audit_retention" ('
        f"{id_column}, "
        '"company" INTEGER UNIQUE REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        '"keep_months" INTEGER NOT NULL DEFAULT 24, '
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"updated_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null)',
        'CREATE INDEX "audit_entry_at_id" ON "audit_entry" ("at", "id")',
    ]


_DROP = ['DROP INDEX "audit_entry_at_id"', 'DROP TABLE "audit_retention"']


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _create(isinstance(Company._meta.db, PostgresEngine)):
            await Company.raw(statement)

    async def drop() -> None:
        for statement in _DROP:
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
