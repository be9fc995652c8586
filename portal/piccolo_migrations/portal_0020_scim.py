"""SCIM provisioning: `scim_token` (a customer's bearer tokens for /scim/v2, only
their sha256 kept) and `scim_user` (what the identity provider wrote about each
user it provisioned; userName unique per company without regard to case).
Raw SQL on both engines, nothing imported from the portal. Backward: drops both
tables (the users they provisioned stay)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:06:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "scim_token and scim_user: SCIM provisioning of a customer's users"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "scim_token" ('
        f"{id_column}, "
        '"company" INTEGER REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        "\"name\" VARCHAR(100) NOT NULL DEFAULT '', "
        "\"prefix\" VARCHAR(12) NOT NULL DEFAULT '', "
        "\"token_hash\" VARCHAR(64) UNIQUE NOT NULL DEFAULT '', "
        '"created_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"last_used_at" TIMESTAMPTZ DEFAULT null, '
        '"revoked_at" TIMESTAMPTZ DEFAULT null)',
        'CREATE INDEX "scim_token_company" ON "scim_token" ("company")',
        'CREATE TABLE "scim_user" ('
        f"{id_column}, "
        '"portal_user" INTEGER UNIQUE REFERENCES "portal_user" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, "
        '"company" INTEGER REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        "\"user_name\" VARCHAR(300) NOT NULL DEFAULT '', "
        "\"user_name_key\" VARCHAR(300) NOT NULL DEFAULT '', "
        '"external_id" VARCHAR(300) DEFAULT null, '
        "\"attributes\" TEXT NOT NULL DEFAULT '{}', "
        '"deleted_at" TIMESTAMPTZ DEFAULT null)',
        # userName is unique in a company whatever its case: two creates of one name at once make one user.
        'CREATE UNIQUE INDEX "scim_user_name" ON "scim_user" ("company", "user_name_key") WHERE "deleted_at" IS NULL',
    ]


_DROP = ['DROP TABLE "scim_user"', 'DROP TABLE "scim_token"']


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
