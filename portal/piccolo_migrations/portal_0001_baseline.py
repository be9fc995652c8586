"""The baseline: the whole schema and the catalogue as the fourteen migrations of
22-23 Nov 2026 (portal_0001_tenants … portal_0015_email_delivery) left them,
squashed before anything was deployed.

Checked to be the same: a fresh database migrated by the old files and one
migrated by this file give the same `pg_dump -s --no-owner`, the same sorted
`sqlite_master` and the same product rows (scripts/schema_dump.sh;
docs/architecture.md, "Migrations"). That is why the statements below keep the
exact text Piccolo's auto-migrations wrote (quoted names, `DEFAULT null` on
columns that are null anyway): SQLite keeps the text of each CREATE as the
schema, so the same text is the same schema.

Raw SQL, both engines, and nothing imported from the portal: a migration is
fixed once it lands, whatever the code becomes. Every later migration has a
backward step and is never edited after it lands.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-23T12:59:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "baseline: companies, users, licences, tally, outbox, API keys, catalogue"


class Company(Table, tablename="company"):
    pass


def _col(name: str, sql: str) -> str:
    return f'"{name}" {sql}'


def _fk(name: str, table: str, on_delete: str, unique: bool = False) -> str:
    unique_sql = " UNIQUE" if unique else ""
    return (
        f'"{name}" INTEGER{unique_sql} REFERENCES "{table}" ("id") ON DELETE {on_delete} ON UPDATE CASCADE DEFAULT null'
    )


_NOW = "TIMESTAMPTZ NOT NULL DEFAULT current_timestamp"
_MAYBE_TIME = "TIMESTAMPTZ DEFAULT null"

# In creation order (a table after those it references); dropped in reverse.
# Each gets an "id" primary key first.
TABLES: list[tuple[str, list[str]]] = [
    (
        "company",
        [
            _col("name", "VARCHAR(200) NOT NULL DEFAULT ''"),
            _col("kind", "VARCHAR(20) NOT NULL DEFAULT ''"),
            _fk("parent", "company", "RESTRICT"),
            # Materialised ancestry "/1/7/42/"
            _col("path", "VARCHAR(255) NOT NULL DEFAULT ''"),
            _col("created_at", _NOW),
            _col("time_zone", "VARCHAR(64) NOT NULL DEFAULT 'UTC'"),
        ],
    ),
    (
        "portal_user",
        [
            _fk("company", "company", "RESTRICT"),
            _col("email", "VARCHAR(254) UNIQUE NOT NULL DEFAULT ''"),
            _col("name", "VARCHAR(200) NOT NULL DEFAULT ''"),
            _col("role", "VARCHAR(20) NOT NULL DEFAULT ''"),
            _col("password_hash", "VARCHAR(255) DEFAULT null"),
            _col("active", "BOOLEAN NOT NULL DEFAULT true"),
            # No longer read (sign-in throttling lives in Redis or memory); kept
            # so the baseline is the old schema exactly. A later migration can drop them.
            _col("failed_sign_ins", "INTEGER NOT NULL DEFAULT 0"),
            _col("locked_until", _MAYBE_TIME),
            _col("created_at", _NOW),
            _col("licence_ends_at", _MAYBE_TIME),
            _col("reminders_off", "BOOLEAN NOT NULL DEFAULT false"),
        ],
    ),
    (
        "password_token",
        [
            _fk("user", "portal_user", "CASCADE"),
            _col("token_hash", "VARCHAR(64) UNIQUE NOT NULL DEFAULT ''"),
            _col("expires_at", _NOW),
            _col("used_at", _MAYBE_TIME),
            _fk("created_by", "portal_user", "SET NULL"),
        ],
    ),
    (
        "audit_entry",
        [
            _col("at", _NOW),
            _fk("actor", "portal_user", "SET NULL"),
            _fk("acting_as", "company", "SET NULL"),
            _fk("company", "company", "SET NULL"),
            _col("action", "VARCHAR(50) NOT NULL DEFAULT ''"),
            _col("detail", "JSON NOT NULL DEFAULT '{}'"),
            _col("dedupe_key", "VARCHAR(120) UNIQUE DEFAULT null"),
        ],
    ),
    (
        "product",
        [
            _col("code", "VARCHAR(40) UNIQUE NOT NULL DEFAULT ''"),
            _col("name", "VARCHAR(200) NOT NULL DEFAULT ''"),
            _col("term_months", "INTEGER DEFAULT null"),
            _col("term_days", "INTEGER DEFAULT null"),
            _col("is_trial", "BOOLEAN NOT NULL DEFAULT false"),
        ],
    ),
    (
        "licence_order",
        [
            _fk("company", "company", "RESTRICT"),
            _fk("product", "product", "RESTRICT"),
            _col("quantity", "INTEGER NOT NULL DEFAULT 0"),
            _col("status", "VARCHAR(20) NOT NULL DEFAULT 'requested'"),
            _col("po_number", "VARCHAR(64) DEFAULT null"),
            _fk("requested_by", "portal_user", "SET NULL"),
            _col("requested_at", _NOW),
            _fk("decided_by", "portal_user", "SET NULL"),
            _col("decided_at", _MAYBE_TIME),
            _col("decline_reason", "VARCHAR(500) DEFAULT null"),
            # The company's path, set by a trigger on insert: "every order under my wing" without a join.
            _col("company_path", "VARCHAR(255) NOT NULL DEFAULT ''"),
        ],
    ),
    (
        "licence_batch",
        [
            _fk("order", "licence_order", "RESTRICT", unique=True),
            _fk("company", "company", "RESTRICT"),
            _fk("product", "product", "RESTRICT"),
            _col("seats", "INTEGER NOT NULL DEFAULT 0"),
            _col("allocated", "INTEGER NOT NULL DEFAULT 0"),
            _col("starts_at", _NOW),
            _col("ends_at", _NOW),
        ],
    ),
    (
        "allocation",
        [
            _fk("batch", "licence_batch", "RESTRICT"),
            _fk("user", "portal_user", "RESTRICT"),
            _col("allocated_at", _NOW),
            _fk("allocated_by", "portal_user", "SET NULL"),
            _col("starts_at", _NOW),
            _col("ends_at", _NOW),
            _col("released_at", _MAYBE_TIME),
        ],
    ),
    (
        "licence_tally",
        [
            _fk("company", "company", "CASCADE"),
            _col("ends_at", _MAYBE_TIME),
            _col("users", "INTEGER NOT NULL DEFAULT 0"),
        ],
    ),
    (
        "outbox_email",
        [
            _col("kind", "VARCHAR(40) NOT NULL DEFAULT ''"),
            _fk("company", "company", "SET NULL"),
            _col("to_email", "VARCHAR(254) NOT NULL DEFAULT ''"),
            _col("subject", "VARCHAR(300) NOT NULL DEFAULT ''"),
            _col("body", "TEXT NOT NULL DEFAULT ''"),
            _col("created_at", _NOW),
            _col("sent_at", _MAYBE_TIME),
            _col("dedupe_key", "VARCHAR(200) UNIQUE DEFAULT null"),
            # queued → sent | captured | failed
            _col("status", "VARCHAR(12) NOT NULL DEFAULT 'queued'"),
            _col("html", "TEXT DEFAULT null"),
            _col("batch", "INTEGER DEFAULT null"),
            _col("attempts", "INTEGER NOT NULL DEFAULT 0"),
            _col("next_attempt_at", _MAYBE_TIME),
            _col("claimed_until", _MAYBE_TIME),
            _col("claim_token", "VARCHAR(32) DEFAULT null"),
            _col("error", "TEXT DEFAULT null"),
            _col("sender", "VARCHAR(300) DEFAULT null"),
            _col("reply_to", "VARCHAR(254) DEFAULT null"),
            _col("resent_from", "INTEGER DEFAULT null"),
        ],
    ),
    (
        "api_key",
        [
            _fk("company", "company", "CASCADE"),
            _col("name", "VARCHAR(100) NOT NULL DEFAULT ''"),
            _col("prefix", "VARCHAR(12) NOT NULL DEFAULT ''"),
            _col("key_hash", "VARCHAR(64) UNIQUE NOT NULL DEFAULT ''"),
            _fk("created_by", "portal_user", "SET NULL"),
            _col("created_at", _NOW),
            _col("revoked_at", _MAYBE_TIME),
        ],
    ),
]

# Both engines. Each serves a lookup by a foreign key or one hot query (docs/benchmarks.md).
INDEXES = [
    'CREATE INDEX company_parent ON "company" ("parent")',
    'CREATE INDEX company_path ON "company" ("path")',
    # "Create Company": names unique among siblings whatever the case (a double
    # click made two). Top partners have no parent: coalesce(parent, 0) makes them
    # siblings. SQLite's lower() folds ASCII only; the code's check folds the rest.
    "CREATE UNIQUE INDEX company_sibling_name ON company (coalesce(parent, 0), lower(name))",
    # The licence tabs: a range on licence_ends_at among active users, answered from the index alone.
    "CREATE INDEX portal_user_active_company_licence ON portal_user (company, licence_ends_at) WHERE active",
    # The same tabs listed by name; also every lookup of users by company.
    "CREATE INDEX portal_user_company_name ON portal_user (company, name, id)",
    'CREATE INDEX password_token_user ON "password_token" ("user")',
    'CREATE INDEX audit_entry_at ON "audit_entry" ("at")',
    'CREATE INDEX audit_entry_actor ON "audit_entry" ("actor")',
    'CREATE INDEX audit_entry_company ON "audit_entry" ("company")',
    'CREATE INDEX licence_order_company ON "licence_order" ("company")',
    'CREATE INDEX licence_order_product ON "licence_order" ("product")',
    'CREATE INDEX licence_order_status ON "licence_order" ("status")',
    'CREATE INDEX licence_order_requested_by ON "licence_order" ("requested_by")',
    'CREATE INDEX licence_order_requested_at ON "licence_order" ("requested_at")',
    # Requested Orders, newest first, per status and per customer.
    "CREATE INDEX licence_order_status_requested ON licence_order (status, requested_at DESC, id DESC)",
    "CREATE INDEX licence_order_company_requested ON licence_order (company, requested_at DESC)",
    # Requested Orders filtered by status and product under a wing: the count from
    # the index alone, the newest page by walking it in order.
    "CREATE INDEX licence_order_wing ON licence_order (status, product, requested_at DESC, id DESC, company_path)",
    'CREATE INDEX licence_batch_company ON "licence_batch" ("company")',
    'CREATE INDEX licence_batch_ends_at ON "licence_batch" ("ends_at")',
    # A company's batches by end (the running batch that ends first; expiry notices).
    "CREATE INDEX licence_batch_company_ends ON licence_batch (company, ends_at)",
    'CREATE INDEX allocation_batch ON "allocation" ("batch")',
    'CREATE INDEX allocation_user ON "allocation" ("user")',
    # A user's seats by end (history, early renewal).
    'CREATE INDEX allocation_user_ends ON allocation ("user", ends_at)',
    'CREATE INDEX outbox_email_created_at ON "outbox_email" ("created_at")',
    'CREATE INDEX outbox_email_company ON "outbox_email" ("company")',
    'CREATE INDEX outbox_email_status ON "outbox_email" ("status")',
    'CREATE INDEX api_key_company ON "api_key" ("company")',
]

# --- PostgreSQL -------------------------------------------------------------------

_POSTGRES = [
    # LIKE '/1/7/%' uses a btree on PostgreSQL only with text_pattern_ops (the
    # database's collation is not C). SQLite's LIKE is served by company_path.
    "CREATE INDEX company_path_prefix ON company (path text_pattern_ops)",
    "CREATE UNIQUE INDEX licence_tally_key ON licence_tally (company, COALESCE(ends_at, '-infinity'))",
    # licence_tally (how many active users of a company end at each instant) is
    # kept by triggers on portal_user, so no write path can forget it. One call
    # per statement, reading the statement's changed rows as transition tables,
    # so a "Select All" that renews 50,000 users moves the tally in one grouped
    # upsert. A statement trigger has the transition tables of its own event
    # only, hence the source chosen by TG_OP. Within a statement the rows go in
    # key order; across statements, tally rows stay locked until commit, and what
    # keeps two transactions from taking them in opposite orders is that every
    # writer of a company's users first locks (or key-share locks, by foreign
    # key) that company's row.
    """
    CREATE FUNCTION licence_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      added CONSTANT text := 'SELECT company, licence_ends_at, 1 AS n FROM new_users WHERE active';
      removed CONSTANT text := 'SELECT company, licence_ends_at, -1 AS n FROM old_users WHERE active';
    BEGIN
      EXECUTE format(
        'INSERT INTO licence_tally (company, ends_at, users) '
        'SELECT company, licence_ends_at, SUM(n) FROM (%s) AS change '
        'GROUP BY company, licence_ends_at HAVING SUM(n) <> 0 '
        'ORDER BY company, licence_ends_at NULLS FIRST '
        'ON CONFLICT (company, COALESCE(ends_at, ''-infinity'')) '
        'DO UPDATE SET users = licence_tally.users + EXCLUDED.users',
        CASE TG_OP WHEN 'INSERT' THEN added WHEN 'DELETE' THEN removed
                   ELSE added || ' UNION ALL ' || removed END);
      RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER portal_user_tally_insert AFTER INSERT ON portal_user "
    "REFERENCING NEW TABLE AS new_users FOR EACH STATEMENT EXECUTE FUNCTION licence_tally_apply()",
    "CREATE TRIGGER portal_user_tally_update AFTER UPDATE ON portal_user "
    "REFERENCING OLD TABLE AS old_users NEW TABLE AS new_users "
    "FOR EACH STATEMENT EXECUTE FUNCTION licence_tally_apply()",
    "CREATE TRIGGER portal_user_tally_delete AFTER DELETE ON portal_user "
    "REFERENCING OLD TABLE AS old_users FOR EACH STATEMENT EXECUTE FUNCTION licence_tally_apply()",
    # Whatever inserts an order (this code, an older release still running during
    # a deploy, a script), its company_path is its company's: an order with a
    # wrong path would drop out of every partner's list.
    """
    CREATE FUNCTION licence_order_company_path() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.company_path := (SELECT path FROM company WHERE id = NEW.company);
      RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER licence_order_company_path BEFORE INSERT OR UPDATE OF company ON licence_order "
    "FOR EACH ROW EXECUTE FUNCTION licence_order_company_path()",
]
_POSTGRES_FUNCTIONS = ["licence_tally_apply()", "licence_order_company_path()"]

# --- SQLite: row triggers only, one step per changed row ----------------------------

_SQLITE_TALLY_ADD = (
    "INSERT INTO licence_tally (company, ends_at, users) SELECT NEW.company, NEW.licence_ends_at, 1 WHERE NEW.active "
    "ON CONFLICT (company, IFNULL(ends_at, '')) DO UPDATE SET users = users + 1;"
)
_SQLITE_TALLY_REMOVE = (
    "UPDATE licence_tally SET users = users - 1 WHERE OLD.active "
    "AND company = OLD.company AND IFNULL(ends_at, '') = IFNULL(OLD.licence_ends_at, '');"
)
_SQLITE_ORDER_PATH = (
    "UPDATE licence_order SET company_path = (SELECT path FROM company WHERE id = NEW.company) WHERE id = NEW.id;"
)
_SQLITE = [
    "CREATE UNIQUE INDEX licence_tally_key ON licence_tally (company, IFNULL(ends_at, ''))",
    f"CREATE TRIGGER portal_user_tally_insert AFTER INSERT ON portal_user BEGIN {_SQLITE_TALLY_ADD} END",
    "CREATE TRIGGER portal_user_tally_update AFTER UPDATE OF company, active, licence_ends_at ON portal_user "
    f"BEGIN {_SQLITE_TALLY_REMOVE} {_SQLITE_TALLY_ADD} END",
    f"CREATE TRIGGER portal_user_tally_delete AFTER DELETE ON portal_user BEGIN {_SQLITE_TALLY_REMOVE} END",
    f"CREATE TRIGGER licence_order_company_path AFTER INSERT ON licence_order BEGIN {_SQLITE_ORDER_PATH} END",
    "CREATE TRIGGER licence_order_company_moved AFTER UPDATE OF company ON licence_order "
    f"BEGIN {_SQLITE_ORDER_PATH} END",
]

# The catalogue, as data: (code, name, term_months, term_days, is_trial). Inserted
# in this order, so Premium is product 1 and the trial product 2.
CATALOGUE = [
    ("sat-premium", "Security Awareness Training — Premium", 12, None, False),
    ("sat-trial", "Security Awareness Training — Free trial", None, 30, True),
]


async def _execute(statement: str) -> None:
    # Piccolo's raw() reads {} as a bound parameter: a JSON default '{}' is meant literally.
    await Company.raw(statement.replace("{", "{{").replace("}", "}}"))


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


def _create_table(name: str, columns: list[str], postgres: bool) -> str:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    return f'CREATE TABLE "{name}" ({", ".join([id_column, *columns])})'


async def _already_has_tables() -> bool:
    if _postgres():
        rows = await Company.raw(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'company'"
        )
    else:
        rows = await Company.raw("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'company'")
    return bool(rows)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        if await _already_has_tables():
            # Made by the migrations before this baseline (development databases only).
            raise RuntimeError(
                "this database was made by the migrations before the baseline of 23 Nov 2026; "
                "delete it and migrate again (make run: rm var/portal.sqlite)"
            )
        postgres = _postgres()
        for name, columns in TABLES:
            await _execute(_create_table(name, columns, postgres))
        for statement in [*INDEXES, *(_POSTGRES if postgres else _SQLITE)]:
            await _execute(statement)
        for row in CATALOGUE:
            await Company.raw(
                "INSERT INTO product (code, name, term_months, term_days, is_trial) VALUES ({}, {}, {}, {}, {})", *row
            )

    async def drop() -> None:
        # Indexes and triggers go with their tables; referencing tables go first.
        for name, _ in reversed(TABLES):
            await _execute(f'DROP TABLE "{name}"')
        if _postgres():
            for function in _POSTGRES_FUNCTIONS:
                await _execute(f"DROP FUNCTION {function}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
