"""The Admin Dashboard's per-customer figures, kept.

`dashboard_figure` holds one row per company: its expired / expiring / unlicensed
users, free seats of running batches, next batch end and pending requests, as
computed at `computed_at`, and the next instants at which the clock alone would
change them (`next_*`). A row is used only while it is fresh: computed, and no
such instant passed since. Triggers make a row stale (computed_at = NULL)
whenever a tally row, a batch or an order of its company changes, so no write
path can leave a stale figure looking fresh; the dashboard recomputes stale rows
(portal/domain/dashboard.py).

On PostgreSQL the triggers lock the company's figure row before marking it, in
company order: a dashboard refreshing that row holds its lock while it reads, so
a writer's change either is in what the refresh read or marks the row after it.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
table, its triggers and the two functions."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-23T15:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dashboard figures per company, kept fresh by triggers"

# Tables whose rows carry a company and change its figures.
WATCHED = ("licence_tally", "licence_batch", "licence_order")


class Company(Table, tablename="company"):
    pass


def _create_table(postgres: bool) -> str:
    id_column = '"id" SERIAL PRIMARY KEY NOT NULL' if postgres else '"id" INTEGER PRIMARY KEY NOT NULL'
    counts = ", ".join(
        f'"{name}" INTEGER NOT NULL DEFAULT 0'
        for name in ("expired", "expiring_72h", "expiring_30d", "unlicensed", "free", "pending")
    )
    times = ", ".join(
        f'"{name}" TIMESTAMPTZ DEFAULT null'
        for name in ("computed_at", "next_change", "next_batch_change", "next_72h", "next_30d", "next_end")
    )
    return (
        'CREATE TABLE "dashboard_figure" ('
        f"{id_column}, "
        '"company" INTEGER UNIQUE REFERENCES "company" ("id") ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, '
        f"{times}, {counts})"
    )


# Every existing company gets a stale row: the first dashboard computes it.
_FILL = "INSERT INTO dashboard_figure (company) SELECT id FROM company"

_POSTGRES = [
    """
    CREATE FUNCTION dashboard_figure_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO dashboard_figure (company) SELECT id FROM new_companies ORDER BY id
      ON CONFLICT (company) DO UPDATE SET computed_at = NULL;
      RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER company_dashboard_figure AFTER INSERT ON company "
    "REFERENCING NEW TABLE AS new_companies FOR EACH STATEMENT EXECUTE FUNCTION dashboard_figure_add()",
    # One call per statement; the lock is taken first and in company order, and
    # the UPDATE after it reads with a new snapshot, so it sees the row as the
    # refresh that held the lock left it (a row stale when the statement began
    # may be fresh by then).
    """
    CREATE FUNCTION dashboard_figure_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT company FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT company FROM old_rows'
        ELSE 'SELECT company FROM new_rows UNION SELECT company FROM old_rows' END;
    BEGIN
      EXECUTE format('SELECT 1 FROM dashboard_figure WHERE company IN (%s) ORDER BY company FOR UPDATE', changed);
      EXECUTE format(
        'UPDATE dashboard_figure SET computed_at = NULL WHERE company IN (%s) AND computed_at IS NOT NULL', changed);
      RETURN NULL;
    END $$
    """,
]
for _table in WATCHED:
    _POSTGRES += [
        f"CREATE TRIGGER {_table}_figure_insert AFTER INSERT ON {_table} "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_figure_stale()",
        f"CREATE TRIGGER {_table}_figure_update AFTER UPDATE ON {_table} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_figure_stale()",
        f"CREATE TRIGGER {_table}_figure_delete AFTER DELETE ON {_table} "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_figure_stale()",
    ]
_POSTGRES_TRIGGERS = [("company_dashboard_figure", "company")] + [
    (f"{table}_figure_{event}", table) for table in WATCHED for event in ("insert", "update", "delete")
]
_POSTGRES_FUNCTIONS = ["dashboard_figure_add()", "dashboard_figure_stale()"]


def _sqlite_stale(company: str) -> str:
    return f"UPDATE dashboard_figure SET computed_at = NULL WHERE company = {company} AND computed_at IS NOT NULL;"


_SQLITE = [
    "CREATE TRIGGER company_dashboard_figure AFTER INSERT ON company BEGIN "
    "INSERT INTO dashboard_figure (company) VALUES (NEW.id) ON CONFLICT (company) DO UPDATE SET computed_at = NULL; "
    "END"
]
for _table in WATCHED:
    _SQLITE += [
        f"CREATE TRIGGER {_table}_figure_insert AFTER INSERT ON {_table} BEGIN {_sqlite_stale('NEW.company')} END",
        f"CREATE TRIGGER {_table}_figure_update AFTER UPDATE ON {_table} BEGIN "
        f"{_sqlite_stale('NEW.company')} {_sqlite_stale('OLD.company')} END",
        f"CREATE TRIGGER {_table}_figure_delete AFTER DELETE ON {_table} BEGIN {_sqlite_stale('OLD.company')} END",
    ]
_SQLITE_TRIGGERS = [name for name, _ in _POSTGRES_TRIGGERS]


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        postgres = _postgres()
        for statement in [_create_table(postgres), _FILL, *(_POSTGRES if postgres else _SQLITE)]:
            await Company.raw(statement)

    async def drop() -> None:
        if _postgres():
            for name, table in _POSTGRES_TRIGGERS:
                await Company.raw(f"DROP TRIGGER {name} ON {table}")
            await Company.raw('DROP TABLE "dashboard_figure"')
            for function in _POSTGRES_FUNCTIONS:
                await Company.raw(f"DROP FUNCTION {function}")
        else:
            for name in _SQLITE_TRIGGERS:
                await Company.raw(f"DROP TRIGGER {name}")
            await Company.raw('DROP TABLE "dashboard_figure"')

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
