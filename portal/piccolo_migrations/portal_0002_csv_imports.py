"""CSV renewal: `csv_import` and `csv_import_row`, both engines.

Raw SQL that creates only these two tables and their indexes, and depends on no
other migration's file (it runs after whichever baseline is present, by ID), so
it stays valid whatever the earlier files become. Backward: drops exactly them.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-23T13:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "csv imports: uploaded files and their rows"


class Company(Table, tablename="company"):
    pass


def _statements(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "csv_import" ('
        f"{id_column}, "
        '"company" INTEGER REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        '"created_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null, '
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        "\"filename\" VARCHAR(255) NOT NULL DEFAULT '', "
        "\"stored_as\" VARCHAR(255) NOT NULL DEFAULT '', "
        '"size_bytes" INTEGER NOT NULL DEFAULT 0, '
        "\"encoding\" VARCHAR(40) NOT NULL DEFAULT '', "
        "\"delimiter\" VARCHAR(4) NOT NULL DEFAULT '', "
        '"has_header" BOOLEAN NOT NULL DEFAULT true, '
        "\"columns\" JSON NOT NULL DEFAULT '[]', "
        '"email_column" INTEGER DEFAULT null, '
        '"add_unknown" BOOLEAN NOT NULL DEFAULT false, '
        "\"status\" VARCHAR(20) NOT NULL DEFAULT 'previewed', "
        '"rows" INTEGER NOT NULL DEFAULT 0, '
        "\"preview\" JSON NOT NULL DEFAULT '{}', "
        "\"result\" JSON NOT NULL DEFAULT '{}', "
        '"applied_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null, '
        '"applied_at" TIMESTAMPTZ DEFAULT null)',
        'CREATE INDEX csv_import_company ON "csv_import" ("company")',
        'CREATE TABLE "csv_import_row" ('
        f"{id_column}, "
        '"csv_import" INTEGER REFERENCES "csv_import" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        '"line" INTEGER NOT NULL DEFAULT 0, '
        '"email" VARCHAR(320) DEFAULT null, '
        "\"name\" VARCHAR(200) NOT NULL DEFAULT '', "
        "\"cell\" TEXT NOT NULL DEFAULT '', "
        '"outcome" VARCHAR(20) DEFAULT null, '
        '"user_id" INTEGER DEFAULT null)',
        # The rows of an import, and of one outcome, in file order (reasons, downloads, the renewal).
        'CREATE INDEX csv_import_row_outcome ON "csv_import_row" ("csv_import", "outcome", "line")',
    ]


async def _execute(statement: str) -> None:
    # Piccolo's raw() reads {} as a bound parameter: JSON defaults are meant literally.
    await Company.raw(statement.replace("{", "{{").replace("}", "}}"))


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _statements(isinstance(Company._meta.db, PostgresEngine)):
            await _execute(statement)

    async def drop() -> None:
        await _execute('DROP TABLE "csv_import_row"')
        await _execute('DROP TABLE "csv_import"')

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
