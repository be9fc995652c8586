"""Partner settings, and the sign-in lock columns nothing reads any more
(throttling lives in Redis or memory).

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
table and puts the two columns back as the baseline had them (their values were
never read, so none is lost that mattered)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-23T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "partner settings; drop portal_user.failed_sign_ins and locked_until"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "partner_setting" ('
        f"{id_column}, "
        '"company" INTEGER UNIQUE REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        '"max_order_quantity" INTEGER NOT NULL DEFAULT 10000, '
        '"low_seat_threshold" INTEGER NOT NULL DEFAULT 0, '
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"updated_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null)',
        'ALTER TABLE "portal_user" DROP COLUMN "failed_sign_ins"',
        'ALTER TABLE "portal_user" DROP COLUMN "locked_until"',
    ]


_RESTORE = [
    'DROP TABLE "partner_setting"',
    'ALTER TABLE "portal_user" ADD COLUMN "failed_sign_ins" INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE "portal_user" ADD COLUMN "locked_until" TIMESTAMPTZ DEFAULT null',
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _create(isinstance(Company._meta.db, PostgresEngine)):
            await Company.raw(statement)

    async def restore() -> None:
        for statement in _RESTORE:
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(restore)
    return manager
