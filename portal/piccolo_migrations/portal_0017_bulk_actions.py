"""Bulk actions: `bulk_run` (one per confirmation of a bulk action on the Admin
Dashboard, unique by its confirmation key) and `bulk_item` (one per customer,
batch or order it covers, with its status and what became of it).

Raw SQL on both engines, nothing imported from the portal. Backward: drops both
tables (what the runs did stays: orders, batches, seats, settings, audit)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:03:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "bulk_run and bulk_item: bulk actions with one summary"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "bulk_run" ('
        f"{id_column}, "
        '"company" INTEGER NOT NULL REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE, '
        '"created_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null, '
        '"confirmation_key" VARCHAR(80) NOT NULL UNIQUE, '
        '"action" VARCHAR(20) NOT NULL, '
        "\"said\" TEXT NOT NULL DEFAULT '', "
        '"total" INTEGER NOT NULL DEFAULT 0, '
        "\"status\" VARCHAR(10) NOT NULL DEFAULT 'queued', "
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"finished_at" TIMESTAMPTZ DEFAULT null)',
        'CREATE TABLE "bulk_item" ('
        f"{id_column}, "
        '"run" INTEGER NOT NULL REFERENCES "bulk_run" ("id") ON DELETE CASCADE ON UPDATE CASCADE, '
        '"company" INTEGER NOT NULL REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE, '
        '"target" INTEGER DEFAULT null, '
        "\"label\" TEXT NOT NULL DEFAULT '', "
        "\"status\" VARCHAR(10) NOT NULL DEFAULT 'queued', "
        "\"outcome\" TEXT NOT NULL DEFAULT '', "
        '"finished_at" TIMESTAMPTZ DEFAULT null)',
        # The job claims a run's queued items; the progress bar counts them.
        'CREATE INDEX "bulk_item_run_status" ON "bulk_item" ("run", "status", "id")',
        'CREATE INDEX "bulk_item_company" ON "bulk_item" ("company")',
    ]


_DROP = ['DROP TABLE "bulk_item"', 'DROP TABLE "bulk_run"']


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
