"""Single sign-on with OpenID Connect: `sso_config` (a partner's identity
provider: issuer, client, the e-mail domains it answers for, and its choices)
and `sso_attempt` (one sign-in sent to the provider: its state, nonce and PKCE
verifier, used once). A domain belongs to one partner at most (`sso_domain`).
Raw SQL on both engines, nothing imported from the portal. Backward: drops the
three tables."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "sso_config, sso_domain and sso_attempt: OpenID Connect sign-in per partner"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "sso_config" ('
        f"{id_column}, "
        '"company" INTEGER UNIQUE REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        "\"issuer\" VARCHAR(500) NOT NULL DEFAULT '', "
        "\"client_id\" VARCHAR(300) NOT NULL DEFAULT '', "
        "\"client_secret\" TEXT NOT NULL DEFAULT '', "
        '"create_on_first_sign_in" BOOLEAN NOT NULL DEFAULT false, '
        '"sso_only_for_staff" BOOLEAN NOT NULL DEFAULT false, '
        '"trust_provider_mfa" BOOLEAN NOT NULL DEFAULT false, '
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"updated_by" INTEGER REFERENCES "portal_user" ("id") ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null)',
        'CREATE TABLE "sso_domain" ('
        f"{id_column}, "
        '"config" INTEGER REFERENCES "sso_config" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        # Lower-cased; one partner's at most, so an address leads to one provider.
        "\"domain\" VARCHAR(253) UNIQUE NOT NULL DEFAULT '')",
        'CREATE INDEX "sso_domain_config" ON "sso_domain" ("config")',
        'CREATE TABLE "sso_attempt" ('
        f"{id_column}, "
        '"config" INTEGER REFERENCES "sso_config" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        "\"state\" VARCHAR(64) UNIQUE NOT NULL DEFAULT '', "
        "\"nonce\" VARCHAR(64) NOT NULL DEFAULT '', "
        "\"code_verifier\" VARCHAR(128) NOT NULL DEFAULT '', "
        "\"next_path\" VARCHAR(500) NOT NULL DEFAULT '', "
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"expires_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"used_at" TIMESTAMPTZ DEFAULT null)',
        'CREATE INDEX "sso_attempt_expires_at" ON "sso_attempt" ("expires_at")',
    ]


_DROP = ['DROP TABLE "sso_attempt"', 'DROP TABLE "sso_domain"', 'DROP TABLE "sso_config"']


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
