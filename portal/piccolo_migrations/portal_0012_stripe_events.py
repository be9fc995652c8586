"""Stripe's webhook events: `stripe_event`, one row per event id (unique), kept as
it arrived and verified, then processed by a job (received → processed | ignored).
The unique id is what makes a replayed event change nothing.

Also an index of card_charge by processor_ref (the PaymentIntent's id), which
refund and dispute events name. Raw SQL on both engines, nothing imported from
the portal. Backward: drops both (what the events recorded, charges and audit
entries, stays)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T11:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "stripe_event: Stripe's webhook events, once each by their id"


class Company(Table, tablename="company"):
    pass


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return [
        'CREATE TABLE "stripe_event" ('
        f"{id_column}, "
        "\"event_id\" VARCHAR(255) UNIQUE NOT NULL DEFAULT '', "
        "\"type\" VARCHAR(100) NOT NULL DEFAULT '', "
        "\"payload\" TEXT NOT NULL DEFAULT '', "
        '"received_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
        "\"status\" VARCHAR(10) NOT NULL DEFAULT 'received', "
        '"processed_at" TIMESTAMPTZ DEFAULT null, '
        "\"outcome\" VARCHAR(200) NOT NULL DEFAULT '')",
        # The sweep's question: events received and not processed yet, oldest first.
        'CREATE INDEX "stripe_event_received" ON "stripe_event" ("received_at") WHERE "status" = \'received\'',
        # Refunds and disputes name the PaymentIntent only: the charge row is found by it.
        'CREATE INDEX "card_charge_processor_ref" ON "card_charge" ("processor_ref")',
    ]


_DROP = ['DROP INDEX "card_charge_processor_ref"', 'DROP INDEX "stripe_event_received"', 'DROP TABLE "stripe_event"']


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
