"""A partner's words and brand: `partner_email_template` (its own subject and
text for a kind of e-mail, one row per partner and kind; the HTML is drawn from
the text) and `partner_brand` (its logo, a small PNG or JPEG kept in the row,
and its colour as #rrggbb). Raw SQL on both engines, nothing imported from the
portal. Backward: drops both tables."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:12:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "partner_email_template, partner_brand: a partner's own e-mail words, logo and colour"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    blob = "BYTEA" if postgres else "BLOB"
    return [
        'CREATE TABLE "partner_email_template" ('
        f"{id_column}, "
        '"company" INTEGER NOT NULL REFERENCES "company" ("id") ON DELETE CASCADE, '
        '"kind" VARCHAR(50) NOT NULL, '
        "\"subject\" VARCHAR(300) NOT NULL DEFAULT '', "
        "\"body\" TEXT NOT NULL DEFAULT '', "
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"updated_by" INTEGER DEFAULT null)',
        'CREATE UNIQUE INDEX "partner_email_template_company_kind" ON "partner_email_template" ("company", "kind")',
        'CREATE TABLE "partner_brand" ('
        f"{id_column}, "
        '"company" INTEGER UNIQUE NOT NULL REFERENCES "company" ("id") ON DELETE CASCADE, '
        '"colour" VARCHAR(7) DEFAULT null, '
        f'"logo" {blob} DEFAULT null, '
        '"logo_type" VARCHAR(20) DEFAULT null, '
        '"logo_digest" VARCHAR(64) DEFAULT null, '
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"updated_by" INTEGER DEFAULT null)',
        'CREATE INDEX "partner_brand_logo_digest" ON "partner_brand" ("logo_digest")',
    ]


_DROP = ['DROP TABLE IF EXISTS "partner_brand"', 'DROP TABLE IF EXISTS "partner_email_template"']


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        postgres = isinstance(Company._meta.db, PostgresEngine)
        for statement in _create(postgres):
            await Company.raw(statement)

    async def drop() -> None:
        for statement in _DROP:
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
