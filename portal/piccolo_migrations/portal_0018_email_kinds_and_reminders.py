"""E-mail kinds rendered when they go, and reminders the partner sets.

- `outbox_email.data`: the facts an e-mail kind's templates are rendered from
  (JSON text), queued with the row; NULL for rows queued before, which keep the
  text they were written with. An index on `outbox_email.batch` lets the expiry
  sweep see what a batch's managers were already sent.
- `partner_setting`: the days before a batch ends at which customer managers
  are reminded (comma-separated, "3": the guides' 72 hours), whether the
  account managers get a copy, the Reply-To address and the sender's name
  (NULL: the partner's first account manager and the partner's name).

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
columns and the index (rows keep the text they were sent with)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T14:04:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "outbox_email.data; partner_setting: reminder days, copy, reply-to, sender name"


class Company(Table, tablename="company"):
    pass


_CREATE = [
    'ALTER TABLE "outbox_email" ADD COLUMN "data" TEXT DEFAULT null',
    'CREATE INDEX outbox_email_batch ON "outbox_email" ("batch")',
    'ALTER TABLE "partner_setting" ADD COLUMN "reminder_days" VARCHAR(40) NOT NULL DEFAULT \'3\'',
    'ALTER TABLE "partner_setting" ADD COLUMN "copy_account_managers" BOOLEAN NOT NULL DEFAULT false',
    'ALTER TABLE "partner_setting" ADD COLUMN "reply_to" VARCHAR(254) DEFAULT null',
    'ALTER TABLE "partner_setting" ADD COLUMN "sender_name" VARCHAR(100) DEFAULT null',
]
_DROP = [
    'ALTER TABLE "partner_setting" DROP COLUMN "sender_name"',
    'ALTER TABLE "partner_setting" DROP COLUMN "reply_to"',
    'ALTER TABLE "partner_setting" DROP COLUMN "copy_account_managers"',
    'ALTER TABLE "partner_setting" DROP COLUMN "reminder_days"',
    "DROP INDEX outbox_email_batch",
    'ALTER TABLE "outbox_email" DROP COLUMN "data"',
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _CREATE:
            await Company.raw(statement)

    async def drop() -> None:
        for statement in _DROP:
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
