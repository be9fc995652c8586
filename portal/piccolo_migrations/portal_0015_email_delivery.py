from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table

ID = "2026-11-23T12:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "e-mail delivery: outbox status, claims and content; a company's time zone; a manager's reminder opt-out"


class OutboxEmail(Table, tablename="outbox_email"):
    pass


def _params(default, null: bool = False, index: bool = False, **extra) -> dict:
    return {
        "default": default,
        "null": null,
        "primary_key": False,
        "unique": False,
        "index": index,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
        **extra,
    }


# (table class, table, column, column class, params). Rows queued before this
# migration become "queued": they were written to be delivered, and now are.
_COLUMNS = [
    ("Company", "company", "time_zone", Varchar, _params("UTC", length=64)),
    ("User", "portal_user", "reminders_off", Boolean, _params(False)),
    ("OutboxEmail", "outbox_email", "status", Varchar, _params("queued", index=True, length=12)),
    ("OutboxEmail", "outbox_email", "html", Text, _params(None, null=True)),
    ("OutboxEmail", "outbox_email", "batch", Integer, _params(None, null=True)),
    ("OutboxEmail", "outbox_email", "attempts", Integer, _params(0)),
    ("OutboxEmail", "outbox_email", "next_attempt_at", Timestamptz, _params(None, null=True)),
    ("OutboxEmail", "outbox_email", "claimed_until", Timestamptz, _params(None, null=True)),
    ("OutboxEmail", "outbox_email", "claim_token", Varchar, _params(None, null=True, length=32)),
    ("OutboxEmail", "outbox_email", "error", Text, _params(None, null=True)),
    ("OutboxEmail", "outbox_email", "sender", Varchar, _params(None, null=True, length=300)),
    ("OutboxEmail", "outbox_email", "reply_to", Varchar, _params(None, null=True, length=254)),
    ("OutboxEmail", "outbox_email", "resent_from", Integer, _params(None, null=True)),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)
    for class_name, tablename, column, column_class, params in _COLUMNS:
        manager.add_column(
            table_class_name=class_name,
            tablename=tablename,
            column_name=column,
            db_column_name=column,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )

    async def drop_index() -> None:
        # Raw steps run before the columns are dropped; SQLite will not drop an indexed column.
        await OutboxEmail.raw("DROP INDEX IF EXISTS outbox_email_status")

    manager.add_raw_backwards(drop_index)
    return manager
