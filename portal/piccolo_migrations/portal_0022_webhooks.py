"""Signed webhooks to a partner's own systems: `webhook_endpoint` (a partner's URL,
the events it takes, its signing secret), `webhook_event` (one message, signed
and sent with the same id and bytes to each endpoint, and again on Resend) and
`webhook_delivery` (one per event and endpoint: attempts, the last answer).

Events of changes are written by a trigger on `audit_entry`, so each is in the
transaction of the change it reports (as e-mails are in the outbox's) without a
line more in the domain functions that audit them; only while some endpoint
exists, so a portal without webhooks writes nothing more. Raw SQL on both
engines, nothing imported from the portal. Backward: drops the trigger and the
three tables."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:08:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook_endpoint, webhook_event, webhook_delivery; events from audit entries"


class Company(Table, tablename="company"):
    pass


# The audit actions that are webhook events, and the event each one is.
EVENT_OF_ACTION = {
    "order.request": "order.requested",
    "order.assign": "order.assigned",
    "order.decline": "order.declined",
    "licences.allocate": "licences.allocated",
    "imports.apply": "licences.allocated",
    "invoice.issue": "invoice.issued",
    "invoice.paid": "invoice.paid",
    "invoice.charge_declined": "charge.failed",
    "invoice.charge_failed": "charge.failed",
    "subscription.request_cancellation": "subscription.cancelled",
    "subscription.lapse": "subscription.lapsed",
    "subscription.end_unpaid": "subscription.lapsed",
}
_CASE = "CASE NEW.action " + " ".join(f"WHEN '{a}' THEN '{e}'" for a, e in EVENT_OF_ACTION.items()) + " END"
_ACTIONS = ", ".join(f"'{a}'" for a in EVENT_OF_ACTION)
_INSERT = (
    "INSERT INTO webhook_event (msg_id, type, company, audit_entry, created_at, dedupe_key) "
    f"VALUES ('msg_audit_' || NEW.id, {_CASE}, NEW.company, NEW.id, NEW.at, 'audit:' || NEW.id)"
)
_WHEN = f"NEW.action IN ({_ACTIONS}) AND EXISTS (SELECT 1 FROM webhook_endpoint WHERE active)"


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    tables = [
        'CREATE TABLE "webhook_endpoint" ('
        f"{id_column}, "
        '"partner" INTEGER NOT NULL REFERENCES "company" ("id") ON DELETE CASCADE, '
        "\"url\" VARCHAR(500) NOT NULL DEFAULT '', "
        "\"description\" VARCHAR(200) NOT NULL DEFAULT '', "
        "\"events\" VARCHAR(1000) NOT NULL DEFAULT '', "
        "\"secret\" VARCHAR(100) NOT NULL DEFAULT '', "
        '"active" BOOLEAN NOT NULL DEFAULT true, '
        "\"disabled_reason\" VARCHAR(300) NOT NULL DEFAULT '', "
        '"failing_since" TIMESTAMPTZ DEFAULT null, '
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"created_by" INTEGER DEFAULT null REFERENCES "portal_user" ("id") ON DELETE SET NULL)',
        'CREATE INDEX "webhook_endpoint_partner" ON "webhook_endpoint" ("partner")',
        'CREATE TABLE "webhook_event" ('
        f"{id_column}, "
        '"msg_id" VARCHAR(60) UNIQUE NOT NULL, '
        '"type" VARCHAR(50) NOT NULL, '
        '"company" INTEGER DEFAULT null REFERENCES "company" ("id") ON DELETE SET NULL, '
        '"audit_entry" INTEGER DEFAULT null, '
        '"endpoint" INTEGER DEFAULT null REFERENCES "webhook_endpoint" ("id") ON DELETE CASCADE, '
        "\"payload\" TEXT NOT NULL DEFAULT '', "
        '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        '"fanned_out" BOOLEAN NOT NULL DEFAULT false, '
        '"dedupe_key" VARCHAR(120) UNIQUE NOT NULL)',
        'CREATE INDEX "webhook_event_to_fan_out" ON "webhook_event" ("id") WHERE NOT "fanned_out"',
        'CREATE TABLE "webhook_delivery" ('
        f"{id_column}, "
        '"event" INTEGER NOT NULL REFERENCES "webhook_event" ("id") ON DELETE CASCADE, '
        '"endpoint" INTEGER NOT NULL REFERENCES "webhook_endpoint" ("id") ON DELETE CASCADE, '
        "\"status\" VARCHAR(10) NOT NULL DEFAULT 'pending', "
        '"attempts" INTEGER NOT NULL DEFAULT 0, '
        '"next_attempt_at" TIMESTAMPTZ DEFAULT null, '
        '"claim_token" VARCHAR(40) DEFAULT null, '
        '"claimed_until" TIMESTAMPTZ DEFAULT null, '
        '"response_status" INTEGER DEFAULT null, '
        "\"response_body\" VARCHAR(1000) NOT NULL DEFAULT '', "
        "\"error\" VARCHAR(300) NOT NULL DEFAULT '', "
        '"last_attempt_at" TIMESTAMPTZ DEFAULT null, '
        '"delivered_at" TIMESTAMPTZ DEFAULT null, '
        'UNIQUE ("event", "endpoint"))',
        'CREATE INDEX "webhook_delivery_due" ON "webhook_delivery" ("next_attempt_at") WHERE "status" = \'pending\'',
        'CREATE INDEX "webhook_delivery_endpoint" ON "webhook_delivery" ("endpoint", "id")',
    ]
    if postgres:
        trigger = [
            "CREATE FUNCTION webhook_event_of_audit() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {_INSERT} ON CONFLICT (dedupe_key) DO NOTHING; RETURN NULL; END $$",
            "CREATE TRIGGER webhook_event_of_audit AFTER INSERT ON audit_entry "
            f"FOR EACH ROW WHEN (NEW.action IN ({_ACTIONS})) EXECUTE FUNCTION webhook_event_of_audit()",
        ]
        # The endpoint check is inside the function: a trigger's WHEN may not read other tables.
        trigger[0] = trigger[0].replace(
            "BEGIN ", "BEGIN IF NOT EXISTS (SELECT 1 FROM webhook_endpoint WHERE active) THEN RETURN NULL; END IF; "
        )
    else:
        trigger = [
            "CREATE TRIGGER webhook_event_of_audit AFTER INSERT ON audit_entry "
            f"WHEN {_WHEN} BEGIN {_INSERT.replace('INSERT INTO', 'INSERT OR IGNORE INTO')}; END"
        ]
    return tables + trigger


def _drop(postgres: bool) -> list[str]:
    trigger = ["DROP TRIGGER webhook_event_of_audit" + (" ON audit_entry" if postgres else "")]
    if postgres:
        trigger.append("DROP FUNCTION webhook_event_of_audit()")
    return [*trigger, 'DROP TABLE "webhook_delivery"', 'DROP TABLE "webhook_event"', 'DROP TABLE "webhook_endpoint"']


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)
    postgres = isinstance(Company._meta.db, PostgresEngine)

    async def create() -> None:
        for statement in _create(postgres):
            await Company.raw(statement)

    async def drop() -> None:
        for statement in _drop(postgres):
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
