"""Refunds and credit notes: `credit_note` with its `credit_note_line`s, numbered per
seller without gaps from billing_profile.next_credit_note_number (a counter of its
own beside the invoices'), and `refund`, one row per refund asked of the processor
or owed by hand, keyed so that asking again never refunds twice.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
tables, last created first, and the counter column (refunds already made at the
processor stay made; their record goes)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "credit_note, credit_note_line, refund; billing_profile.next_credit_note_number"


class Company(Table, tablename="company"):
    pass


def _fk(name: str, table: str, on_delete: str) -> str:
    return f'"{name}" INTEGER REFERENCES "{table}" ("id") ON DELETE {on_delete} ON UPDATE CASCADE DEFAULT null'


def _text(name: str, length: int, default: str | None = "") -> str:
    if default is None:
        return f'"{name}" VARCHAR({length}) DEFAULT null'
    return f"\"{name}\" VARCHAR({length}) NOT NULL DEFAULT '{default}'"


def _int(name: str, default: int = 0, big: bool = False) -> str:
    return f'"{name}" {"BIGINT" if big else "INTEGER"} NOT NULL DEFAULT {default}'


def _time(name: str, required: bool = False) -> str:
    return (
        f'"{name}" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp' if required else f'"{name}" TIMESTAMPTZ DEFAULT null'
    )


TABLES: list[tuple[str, list[str]]] = [
    (
        "credit_note",
        [
            _fk("partner", "company", "RESTRICT"),
            _fk("company", "company", "RESTRICT"),
            _text("company_path", 255),
            _fk("invoice", "invoice", "RESTRICT"),
            _int("number"),
            _text("currency", 3, "USD"),
            _int("subtotal_cents", big=True),
            _int("tax_rate_bp"),
            _int("tax_cents", big=True),
            _int("total_cents", big=True),
            _text("reason", 300),
            _time("issued_at", required=True),
            _fk("issued_by", "portal_user", "SET NULL"),
        ],
    ),
    (
        "credit_note_line",
        [
            _fk("credit_note", "credit_note", "CASCADE"),
            _int("position"),
            _text("code", 40),
            _text("description", 300),
            _int("quantity", 1),
            _int("unit_cents", big=True),
            _int("amount_cents", big=True),
        ],
    ),
    (
        "refund",
        [
            _fk("invoice", "invoice", "RESTRICT"),
            _fk("company", "company", "RESTRICT"),
            _text("company_path", 255),
            _fk("charge", "card_charge", "SET NULL"),
            _text("method", 10),
            _int("amount_cents", big=True),
            _text("currency", 3, "USD"),
            _text("reason", 300),
            _text("status", 10, "pending"),
            _text("processor_ref", 64, None),
            _text("failure", 200, None),
            _fk("credit_note", "credit_note", "SET NULL"),
            _fk("requested_by", "portal_user", "SET NULL"),
            _time("requested_at", required=True),
            _time("attempted_at"),
            _time("settled_at"),
            "\"idempotency_key\" VARCHAR(120) UNIQUE NOT NULL DEFAULT ''",
        ],
    ),
]

INDEXES = [
    'CREATE UNIQUE INDEX "credit_note_partner_number" ON "credit_note" ("partner", "number")',
    'CREATE INDEX "credit_note_company" ON "credit_note" ("company")',
    'CREATE INDEX "credit_note_invoice" ON "credit_note" ("invoice")',
    'CREATE INDEX "credit_note_line_credit_note" ON "credit_note_line" ("credit_note")',
    'CREATE INDEX "refund_invoice" ON "refund" ("invoice")',
]


def _create(postgres: bool) -> list[str]:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    statements = [f'CREATE TABLE "{name}" ({", ".join([id_column, *columns])})' for name, columns in TABLES]
    return [
        'ALTER TABLE "billing_profile" ADD COLUMN "next_credit_note_number" INTEGER NOT NULL DEFAULT 1',
        *statements,
        *INDEXES,
    ]


_DROP = [
    *(f'DROP TABLE "{name}"' for name, _ in reversed(TABLES)),
    'ALTER TABLE "billing_profile" DROP COLUMN "next_credit_note_number"',
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
