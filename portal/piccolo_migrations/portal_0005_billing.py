"""Subscriptions and billing: billing profiles, the partners'
catalogues, billing accounts, subscriptions, invoices with their lines, card charges.

Raw SQL on both engines, nothing imported from the portal. Backward: drops
exactly these tables, last created first. Catalogue rows are not data of this
migration: each partner's catalogue is written from the guide's figures the
first time it is read (portal/domain/billing/catalogue.py)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-23T15:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing: profiles, catalogue items, accounts, subscriptions, invoices, lines, charges"


class Company(Table, tablename="company"):
    pass


def _fk(name: str, table: str, on_delete: str, unique: bool = False) -> str:
    unique_sql = " UNIQUE" if unique else ""
    return (
        f'"{name}" INTEGER{unique_sql} REFERENCES "{table}" ("id") ON DELETE {on_delete} ON UPDATE CASCADE DEFAULT null'
    )


def _text(name: str, length: int, default: str | None = "") -> str:
    if default is None:
        return f'"{name}" VARCHAR({length}) DEFAULT null'
    return f"\"{name}\" VARCHAR({length}) NOT NULL DEFAULT '{default}'"


def _int(name: str, default: int = 0, big: bool = False) -> str:
    return f'"{name}" {"BIGINT" if big else "INTEGER"} NOT NULL DEFAULT {default}'


def _bool(name: str, default: bool) -> str:
    return f'"{name}" BOOLEAN NOT NULL DEFAULT {"true" if default else "false"}'


def _time(name: str, now: bool = False) -> str:
    return f'"{name}" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp' if now else f'"{name}" TIMESTAMPTZ DEFAULT null'


TABLES: list[tuple[str, list[str]]] = [
    (
        "billing_profile",
        [
            _fk("company", "company", "CASCADE", unique=True),
            _text("currency", 3, "USD"),
            _int("tax_rate_bp"),
            _bool("assign_unpaid", False),
            _int("next_invoice_number", 1),
        ],
    ),
    (
        "catalogue_item",
        [
            _fk("partner", "company", "CASCADE"),
            _text("code", 40),
            _text("kind", 20),
            _text("name", 200),
            _int("price_cents", big=True),
            _text("period", 10),
            _int("included_users"),
            _bool("active", True),
        ],
    ),
    (
        "billing_account",
        [
            _fk("company", "company", "CASCADE", unique=True),
            _text("billing_name", 200),
            _text("billing_email", 254),
            _text("address", 500),
            _text("country", 2),
            _text("card_token", 64, None),
            _text("card_brand", 20, None),
            _text("card_last4", 4, None),
            _text("card_expires", 7, None),
            _time("updated_at", now=True),
        ],
    ),
    (
        "subscription",
        [
            _fk("company", "company", "RESTRICT"),
            _text("company_path", 255),
            _fk("partner", "company", "RESTRICT"),
            _text("tier", 40),
            _int("extra_users"),
            _int("read_only_users"),
            '"next_extra_users" INTEGER DEFAULT null',
            '"next_read_only_users" INTEGER DEFAULT null',
            _text("method", 10),
            _text("status", 10, "pending"),
            _bool("auto_renew", True),
            _time("term_start"),
            _time("term_end"),
            _fk("batch", "licence_batch", "SET NULL"),
            _time("cancel_requested_at"),
            _time("cancelled_at"),
            _int("renewal_attempts"),
            _time("next_charge_at"),
            _time("created_at", now=True),
            _fk("created_by", "portal_user", "SET NULL"),
        ],
    ),
    (
        "invoice",
        [
            _fk("partner", "company", "RESTRICT"),
            _fk("company", "company", "RESTRICT"),
            _text("company_path", 255),
            _fk("subscription", "subscription", "RESTRICT"),
            _fk("order", "licence_order", "SET NULL"),
            '"number" INTEGER DEFAULT null',
            _text("status", 10, "draft"),
            _text("kind", 20),
            _text("currency", 3, "USD"),
            _int("subtotal_cents", big=True),
            _int("tax_rate_bp"),
            _int("tax_cents", big=True),
            _int("total_cents", big=True),
            _time("term_start"),
            _time("term_end"),
            _time("created_at", now=True),
            _time("issued_at"),
            _time("due_at"),
            _time("paid_at"),
            _text("payment_method", 20, None),
            _text("payment_reference", 100, None),
            _fk("recorded_by", "portal_user", "SET NULL"),
            _time("voided_at"),
            _text("void_reason", 300, None),
            _fk("replaces", "invoice", "SET NULL"),
            '"idempotency_key" VARCHAR(120) UNIQUE DEFAULT null',
        ],
    ),
    (
        "invoice_line",
        [
            _fk("invoice", "invoice", "CASCADE"),
            _int("position"),
            _text("code", 40),
            _text("description", 300),
            _int("quantity", 1),
            _int("unit_cents", big=True),
            _int("amount_cents", big=True),
        ],
    ),
    (
        "card_charge",
        [
            _fk("invoice", "invoice", "RESTRICT"),
            _int("attempt", 1),
            _int("amount_cents", big=True),
            _text("currency", 3, "USD"),
            _text("status", 10),
            _text("processor_ref", 64, None),
            _text("decline_reason", 200, None),
            '"attempted_at" TIMESTAMPTZ NOT NULL',
            '"idempotency_key" VARCHAR(120) NOT NULL UNIQUE',
        ],
    ),
]

INDEXES = [
    'CREATE UNIQUE INDEX catalogue_item_partner_code ON "catalogue_item" ("partner", "code")',
    'CREATE INDEX subscription_company ON "subscription" ("company")',
    'CREATE INDEX subscription_path ON "subscription" ("company_path")',
    # The renewal job's scan: live subscriptions by the end of their term.
    'CREATE INDEX subscription_term_end ON "subscription" ("term_end")',
    # Numbers never repeat within a seller; drafts have none.
    'CREATE UNIQUE INDEX invoice_partner_number ON "invoice" ("partner", "number")',
    'CREATE INDEX invoice_company ON "invoice" ("company")',
    'CREATE INDEX invoice_path_status ON "invoice" ("company_path", "status")',
    'CREATE INDEX invoice_subscription ON "invoice" ("subscription")',
    'CREATE INDEX invoice_line_invoice ON "invoice_line" ("invoice", "position")',
    'CREATE INDEX card_charge_invoice ON "card_charge" ("invoice")',
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        postgres = isinstance(Company._meta.db, PostgresEngine)
        id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
        for name, columns in TABLES:
            await Company.raw(f'CREATE TABLE "{name}" ({", ".join([id_column, *columns])})')
        for statement in INDEXES:
            await Company.raw(statement)

    async def drop() -> None:
        for name, _ in reversed(TABLES):
            await Company.raw(f'DROP TABLE "{name}"')

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
