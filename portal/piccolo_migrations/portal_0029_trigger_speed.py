"""The triggers that keep licence_tally, dashboard_figure and csv_import.stale,
made cheap per firing; what they keep is unchanged.

PostgreSQL: the three trigger functions (licence_tally_apply,
dashboard_figure_stale, csv_import_mark_stale) built their statements with
`EXECUTE format(...)` on every firing, so every firing parsed and planned them
again (about 1 ms a firing: a learner added with a seat paid it nine times).
They now branch on TG_OP to static SQL, which PL/pgSQL plans once per trigger
and session. And licence_tally_apply writes the tally only when the statement
moved it: an UPDATE of users that changes no one's company, active flag or
licence end (a name, a password, a sign-in) used to run an empty upsert, which
still fired licence_tally's INSERT and UPDATE statement triggers, each of
them marking nothing.

SQLite: the tally's update trigger fires only for a row whose company, active
flag or licence end changed (an UPDATE setting them to what they were took the
user out of the tally and back, marking the dashboard and the imports stale for
no change); PostgreSQL never marked those.

The triggers themselves stay (names, tables, events). Raw SQL on both engines,
nothing imported from the portal. Backward: the definitions of migrations
0001, 0004 and 0008 again."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T20:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tally, dashboard and import-stale triggers: static SQL, no empty tally writes"


class Company(Table, tablename="company"):
    pass


# --- PostgreSQL ----------------------------------------------------------------

_TALLY_UPSERT = (
    "INSERT INTO licence_tally (company, ends_at, users) "
    "SELECT company, licence_ends_at, SUM(n) FROM ({rows}) AS change "
    "GROUP BY company, licence_ends_at HAVING SUM(n) <> 0 "
    "ORDER BY company, licence_ends_at NULLS FIRST "
    "ON CONFLICT (company, COALESCE(ends_at, '-infinity')) "
    "DO UPDATE SET users = licence_tally.users + EXCLUDED.users"
)
_ADDED = "SELECT company, licence_ends_at, 1 AS n FROM new_users WHERE active"
_REMOVED = "SELECT company, licence_ends_at, -1 AS n FROM old_users WHERE active"
_MOVED = f"{_ADDED} UNION ALL {_REMOVED}"

# Rows in key order within a statement; across statements, every writer of a
# company's users holds that company's row lock first (migration 0001).
_TALLY = f"""
CREATE OR REPLACE FUNCTION licence_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_TALLY_UPSERT.format(rows=_ADDED)};
  ELSIF TG_OP = 'DELETE' THEN
    {_TALLY_UPSERT.format(rows=_REMOVED)};
  ELSE
    -- An empty upsert still fires licence_tally's statement triggers.
    PERFORM 1 FROM ({_MOVED}) AS change GROUP BY company, licence_ends_at HAVING SUM(n) <> 0 LIMIT 1;
    IF FOUND THEN
      {_TALLY_UPSERT.format(rows=_MOVED)};
    END IF;
  END IF;
  RETURN NULL;
END $$
"""


def _marking(lock: str, mark: str) -> str:
    """A statement trigger's body: the rows of the companies the statement touched
    locked in order, then marked; `{companies}` in both is where they come from."""
    branches = []
    for op, companies in (
        ("INSERT", "SELECT company FROM new_rows"),
        ("DELETE", "SELECT company FROM old_rows"),
        ("UPDATE", "SELECT company FROM new_rows UNION SELECT company FROM old_rows"),
    ):
        keyword = "IF" if op == "INSERT" else "ELSIF" if op == "DELETE" else "ELSE"
        condition = f" TG_OP = '{op}' THEN" if keyword != "ELSE" else ""
        branches.append(
            f"  {keyword}{condition}\n"
            f"    PERFORM 1 {lock.format(companies=companies)};\n"
            f"    {mark.format(companies=companies)};"
        )
    return "BEGIN\n" + "\n".join(branches) + "\n  END IF;\n  RETURN NULL;\nEND"


_PREVIEWED = "status = 'previewed' AND NOT stale"
_DASHBOARD = (
    "CREATE OR REPLACE FUNCTION dashboard_figure_stale() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    + _marking(
        "FROM dashboard_figure WHERE company IN ({companies}) ORDER BY company FOR UPDATE",
        "UPDATE dashboard_figure SET computed_at = NULL WHERE company IN ({companies}) AND computed_at IS NOT NULL",
    )
    + " $$"
)
_IMPORTS = (
    "CREATE OR REPLACE FUNCTION csv_import_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    + _marking(
        f"FROM csv_import WHERE company IN ({{companies}}) AND {_PREVIEWED} ORDER BY id FOR UPDATE",
        f"UPDATE csv_import SET stale = true WHERE company IN ({{companies}}) AND {_PREVIEWED}",
    )
    + " $$"
)
_POSTGRES = [_TALLY, _DASHBOARD, _IMPORTS]

# What migrations 0001, 0004 and 0008 made, for the way back.
_POSTGRES_BEFORE = [
    """
    CREATE OR REPLACE FUNCTION licence_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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
    """
    CREATE OR REPLACE FUNCTION dashboard_figure_stale() RETURNS trigger LANGUAGE plpgsql AS $$
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
    f"""
    CREATE OR REPLACE FUNCTION csv_import_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT company FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT company FROM old_rows'
        ELSE 'SELECT company FROM new_rows UNION SELECT company FROM old_rows' END;
    BEGIN
      EXECUTE format(
        'SELECT 1 FROM csv_import WHERE company IN (%s) AND {_PREVIEWED.replace("'", "''")} ORDER BY id FOR UPDATE',
        changed);
      EXECUTE format(
        'UPDATE csv_import SET stale = true WHERE company IN (%s) AND {_PREVIEWED.replace("'", "''")}', changed);
      RETURN NULL;
    END $$
    """,
]

# --- SQLite ----------------------------------------------------------------------

_SQLITE_TALLY_ADD = (
    "INSERT INTO licence_tally (company, ends_at, users) SELECT NEW.company, NEW.licence_ends_at, 1 WHERE NEW.active "
    "ON CONFLICT (company, IFNULL(ends_at, '')) DO UPDATE SET users = users + 1;"
)
_SQLITE_TALLY_REMOVE = (
    "UPDATE licence_tally SET users = users - 1 WHERE OLD.active "
    "AND company = OLD.company AND IFNULL(ends_at, '') = IFNULL(OLD.licence_ends_at, '');"
)
_SQLITE_MOVED = (
    "WHEN OLD.company IS NOT NEW.company OR OLD.active IS NOT NEW.active "
    "OR OLD.licence_ends_at IS NOT NEW.licence_ends_at "
)


def _sqlite_tally_update(when: str) -> list[str]:
    return [
        "DROP TRIGGER portal_user_tally_update",
        "CREATE TRIGGER portal_user_tally_update AFTER UPDATE OF company, active, licence_ends_at ON portal_user "
        f"{when}BEGIN {_SQLITE_TALLY_REMOVE} {_SQLITE_TALLY_ADD} END",
    ]


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _POSTGRES if _postgres() else _sqlite_tally_update(_SQLITE_MOVED):
            await Company.raw(statement)

    async def restore() -> None:
        for statement in _POSTGRES_BEFORE if _postgres() else _sqlite_tally_update(""):
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(restore)
    return manager
