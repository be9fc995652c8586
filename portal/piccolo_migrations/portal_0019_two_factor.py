"""Two-factor sign-in and the sessions a manager sees.

- `totp_factor`: a manager's authenticator app (one each), with the newest time
  step a code was accepted for, so a code is never accepted twice;
- `recovery_code`: ten one-time codes per manager, sha256 only;
- `passkey`: WebAuthn credentials (id, public key, signature counter);
- `user_session`: one row per signed-in browser (browser, address, signed in,
  last seen, ended), which the session in the store names;
- partner_setting.two_factor_staff / two_factor_customers: a partner requires a
  second factor of its own managers (and its sub-partners'), or of its
  customers' managers.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
tables and the two columns (managers then sign in with a password alone)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "two-factor sign-in: authenticator apps, recovery codes, passkeys, sessions a manager sees"

_USER = 'INTEGER REFERENCES "portal_user" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null'


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "totp_factor" ('
        f"{id_column}, "
        f'"user" {_USER.replace("INTEGER", "INTEGER UNIQUE", 1)}, '
        "\"secret\" VARCHAR(64) NOT NULL DEFAULT '', "
        '"last_step" INTEGER NOT NULL DEFAULT 0, '
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        'CREATE TABLE "recovery_code" ('
        f"{id_column}, "
        f'"user" {_USER}, '
        "\"code_hash\" VARCHAR(64) NOT NULL DEFAULT '', "
        '"used_at" TIMESTAMPTZ DEFAULT null)',
        'CREATE INDEX "recovery_code_user" ON "recovery_code" ("user")',
        'CREATE TABLE "passkey" ('
        f"{id_column}, "
        f'"user" {_USER}, '
        "\"credential_id\" VARCHAR(1024) UNIQUE NOT NULL DEFAULT '', "
        "\"public_key\" TEXT NOT NULL DEFAULT '', "
        '"sign_count" INTEGER NOT NULL DEFAULT 0, '
        "\"name\" VARCHAR(100) NOT NULL DEFAULT '', "
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"last_used_at" TIMESTAMPTZ DEFAULT null)',
        'CREATE INDEX "passkey_user" ON "passkey" ("user")',
        'CREATE TABLE "user_session" ('
        f"{id_column}, "
        f'"user" {_USER}, '
        "\"browser\" VARCHAR(200) NOT NULL DEFAULT '', "
        "\"address\" VARCHAR(64) NOT NULL DEFAULT '', "
        "\"method\" VARCHAR(20) NOT NULL DEFAULT 'password', "
        '"signed_in_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"last_seen_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"ended_at" TIMESTAMPTZ DEFAULT null)',
        # Profile lists a user's open sessions, newest first.
        'CREATE INDEX "user_session_user" ON "user_session" ("user", "signed_in_at")',
        'ALTER TABLE "partner_setting" ADD COLUMN "two_factor_staff" BOOLEAN NOT NULL DEFAULT false',
        'ALTER TABLE "partner_setting" ADD COLUMN "two_factor_customers" BOOLEAN NOT NULL DEFAULT false',
    ]


_DROP = [
    'ALTER TABLE "partner_setting" DROP COLUMN "two_factor_customers"',
    'ALTER TABLE "partner_setting" DROP COLUMN "two_factor_staff"',
    'DROP INDEX "user_session_user"',
    'DROP TABLE "user_session"',
    'DROP INDEX "passkey_user"',
    'DROP TABLE "passkey"',
    'DROP INDEX "recovery_code_user"',
    'DROP TABLE "recovery_code"',
    'DROP TABLE "totp_factor"',
]


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
