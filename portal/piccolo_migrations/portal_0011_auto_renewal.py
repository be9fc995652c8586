"""Automatic renewal, per customer: `auto_renewal`, one row per customer whose
partner chose it (no row: off). A batch of the customer is renewed `days_before`
days before it ends, with its quantity or with its seat holders' number, or a
renewal order is placed for the partner to assign ("needs approval").

The job claims a batch with an audit entry whose unique `dedupe_key` is
"auto_renewal:<batch>", so a batch is renewed (or its order placed) once.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
table (the batches and orders it renewed stay)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "auto_renewal: a customer's automatic renewal, as its partner set it"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "auto_renewal" ('
        f"{id_column}, "
        '"company" INTEGER UNIQUE REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        "\"mode\" VARCHAR(10) NOT NULL DEFAULT 'off', "
        '"days_before" INTEGER NOT NULL DEFAULT 7, '
        "\"quantity\" VARCHAR(10) NOT NULL DEFAULT 'same', "
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"updated_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null)',
    ]


_DROP = ['DROP TABLE "auto_renewal"']


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
