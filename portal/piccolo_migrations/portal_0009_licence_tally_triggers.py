from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-22T06:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "keep licence_tally with triggers on portal_user, and fill it"


class Company(Table, tablename="company"):
    pass


# PostgreSQL: one trigger call per statement, reading the statement's changed
# rows as transition tables, so a "Select All" that renews 50,000 users moves the
# tally in one grouped upsert. A statement trigger has the transition tables of
# its own event only, hence the source chosen by TG_OP. Within a statement the
# rows go in key order; across statements, tally rows stay locked until commit,
# and what keeps two transactions from taking them in opposite orders is that
# every writer of a company's users first locks (or key-share locks, by foreign
# key) that company's row.
_POSTGRES = [
    "CREATE UNIQUE INDEX licence_tally_key ON licence_tally (company, COALESCE(ends_at, '-infinity'))",
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
]

# SQLite has row triggers only: one step per changed user.
_SQLITE_ADD = (
    "INSERT INTO licence_tally (company, ends_at, users) SELECT NEW.company, NEW.licence_ends_at, 1 WHERE NEW.active "
    "ON CONFLICT (company, IFNULL(ends_at, '')) DO UPDATE SET users = users + 1;"
)
_SQLITE_REMOVE = (
    "UPDATE licence_tally SET users = users - 1 WHERE OLD.active "
    "AND company = OLD.company AND IFNULL(ends_at, '') = IFNULL(OLD.licence_ends_at, '');"
)
_SQLITE = [
    "CREATE UNIQUE INDEX licence_tally_key ON licence_tally (company, IFNULL(ends_at, ''))",
    f"CREATE TRIGGER portal_user_tally_insert AFTER INSERT ON portal_user BEGIN {_SQLITE_ADD} END",
    "CREATE TRIGGER portal_user_tally_update AFTER UPDATE OF company, active, licence_ends_at ON portal_user "
    f"BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
    f"CREATE TRIGGER portal_user_tally_delete AFTER DELETE ON portal_user BEGIN {_SQLITE_REMOVE} END",
]

_FILL = (
    "INSERT INTO licence_tally (company, ends_at, users) "
    "SELECT company, licence_ends_at, COUNT(*) FROM portal_user WHERE active GROUP BY company, licence_ends_at"
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def triggers() -> None:
        statements = _POSTGRES if isinstance(Company._meta.db, PostgresEngine) else _SQLITE
        for statement in [*statements, _FILL]:
            await Company.raw(statement)

    async def drop() -> None:
        postgres = isinstance(Company._meta.db, PostgresEngine)
        for event in ("insert", "update", "delete"):
            on = " ON portal_user" if postgres else ""
            await Company.raw(f"DROP TRIGGER IF EXISTS portal_user_tally_{event}{on}")
        if postgres:
            await Company.raw("DROP FUNCTION IF EXISTS licence_tally_apply()")
        await Company.raw("DROP INDEX IF EXISTS licence_tally_key")
        await Company.raw("DELETE FROM licence_tally")

    manager.add_raw(triggers)
    manager.add_raw_backwards(drop)
    return manager
