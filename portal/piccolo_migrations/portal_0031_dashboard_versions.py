"""The Admin Dashboard's kept parts under one version: `dashboard_figure.batch_version`
(migration 0030, raised by licence_batch) is raised also by licence_order and
subscription (a batch renewed or its renewal requested, a subscription's term that
renews a batch by itself); a company's own row by its new name, kind, parent or
path, whatever its kind (the wing's tree); and a seller's customers' rows by its
catalogue or its billing currency (the price of a standard user values the
horizons' seats). The forecast, the 30/60/90-day horizons, "Ending in the next 30
days" and the wing's tree read nothing else that changes but the clock, which the
web process keeps them by.

PostgreSQL: one statement-level function over the transition tables of orders and
subscriptions, rows locked in company order first, as the other dashboard_figure
triggers do; row triggers for companies, catalogue items and billing profiles (a
trigger on a column list cannot have transition tables; these change one row at a
time, seldom; a billing profile's invoice counter raises nothing). SQLite: row
triggers. Raw SQL on both engines, nothing imported from the portal. Backward:
drops the triggers and the functions."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-07T23:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dashboard_figure.batch_version raised by orders, subscriptions, companies, catalogues and currencies"


class Company(Table, tablename="company"):
    pass


_TABLES = ("licence_order", "subscription")
_EVENTS = ("insert", "update", "delete")
_TRIGGERS = [(f"{table}_version_{event}", table) for table in _TABLES for event in _EVENTS]
_COMPANY = ("company_version", "company")
# A seller's price of a standard user and its currency value the horizons' seats: its customers' rows.
_SELLERS = (("catalogue_item", "partner"), ("billing_profile", "company"))

_COMPANY_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in ("name", "kind", "parent", "path"))

_POSTGRES = [
    """
    CREATE FUNCTION dashboard_version_of() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT company FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT company FROM old_rows'
        ELSE 'SELECT company FROM new_rows UNION SELECT company FROM old_rows' END;
    BEGIN
      EXECUTE format('SELECT 1 FROM dashboard_figure WHERE company IN (%s) ORDER BY company FOR UPDATE', changed);
      EXECUTE format(
        'UPDATE dashboard_figure SET batch_version = nextval(''dashboard_batch_version'') WHERE company IN (%s)',
        changed);
      RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION dashboard_version_of_company() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE dashboard_figure SET batch_version = nextval('dashboard_batch_version') WHERE company = NEW.id;
      RETURN NULL;
    END $$
    """,
    *(
        f"CREATE TRIGGER {table}_version_insert AFTER INSERT ON {table} "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_version_of()"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_version_of()"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_delete AFTER DELETE ON {table} "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dashboard_version_of()"
        for table in _TABLES
    ),
    "CREATE TRIGGER company_version AFTER UPDATE OF name, kind, parent, path ON company FOR EACH ROW "
    f"WHEN ({_COMPANY_CHANGED}) EXECUTE FUNCTION dashboard_version_of_company()",
    *(
        f"""
    CREATE FUNCTION dashboard_version_of_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      seller bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.{column} ELSE NEW.{column} END;
    BEGIN
      PERFORM 1 FROM dashboard_figure WHERE company IN (SELECT id FROM company WHERE parent = seller)
        ORDER BY company FOR UPDATE;
      UPDATE dashboard_figure SET batch_version = nextval('dashboard_batch_version')
        WHERE company IN (SELECT id FROM company WHERE parent = seller);
      RETURN NULL;
    END $$
    """
        for table, column in _SELLERS
    ),
    "CREATE TRIGGER catalogue_item_version AFTER INSERT OR UPDATE OR DELETE ON catalogue_item "
    "FOR EACH ROW EXECUTE FUNCTION dashboard_version_of_catalogue_item()",
    "CREATE TRIGGER billing_profile_version_currency AFTER UPDATE OF currency ON billing_profile FOR EACH ROW "
    "WHEN (OLD.currency IS DISTINCT FROM NEW.currency) EXECUTE FUNCTION dashboard_version_of_billing_profile()",
    "CREATE TRIGGER billing_profile_version AFTER INSERT OR DELETE ON billing_profile "
    "FOR EACH ROW EXECUTE FUNCTION dashboard_version_of_billing_profile()",
]


def _sqlite_bump(company: str, customers: bool = False) -> str:
    """Raises the row of `company`, or with `customers`, the rows of the companies it sells to."""
    which = f"IN (SELECT id FROM company WHERE parent = {company})" if customers else f"= {company}"
    return (
        "UPDATE dashboard_figure SET batch_version = "
        f"(SELECT COALESCE(MAX(batch_version), 0) + 1 FROM dashboard_figure) WHERE company {which};"
    )


_ROW = {"insert": "NEW", "update": "NEW", "delete": "OLD"}
# What follows AFTER in each SQLite trigger: the event, the table and when.
_SQLITE_EVENT = {(table, event): f"{event.upper()} ON {table}" for table, _ in _SELLERS for event in _EVENTS} | {
    ("billing_profile", "update"): "UPDATE OF currency ON billing_profile WHEN OLD.currency IS NOT NEW.currency"
}


_SQLITE = [
    *(
        f"CREATE TRIGGER {table}_version_insert AFTER INSERT ON {table} BEGIN {_sqlite_bump('NEW.company')} END"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_update AFTER UPDATE ON {table} BEGIN "
        f"{_sqlite_bump('NEW.company')} {_sqlite_bump('OLD.company')} END"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_version_delete AFTER DELETE ON {table} BEGIN {_sqlite_bump('OLD.company')} END"
        for table in _TABLES
    ),
    "CREATE TRIGGER company_version AFTER UPDATE OF name, kind, parent, path ON company "
    f"WHEN {_COMPANY_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN {_sqlite_bump('NEW.id')} END",
    *(
        f"CREATE TRIGGER {table}_version_{event} AFTER {_SQLITE_EVENT[table, event]} "
        f"BEGIN {_sqlite_bump(f'{_ROW[event]}.{column}', customers=True)} END"
        for table, column in _SELLERS
        for event in _EVENTS
    ),
]


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _POSTGRES if _postgres() else _SQLITE:
            await Company.raw(statement)

    async def drop() -> None:
        if _postgres():
            sellers = [(f"{table}_version", table) for table, _ in _SELLERS]
            sellers.append(("billing_profile_version_currency", "billing_profile"))
            for name, table in [*_TRIGGERS, _COMPANY, *sellers]:
                await Company.raw(f"DROP TRIGGER {name} ON {table}")
            for function in ("", "_company", *(f"_{table}" for table, _ in _SELLERS)):
                await Company.raw(f"DROP FUNCTION dashboard_version_of{function}()")
        else:
            sellers = [(f"{table}_version_{event}", table) for table, _ in _SELLERS for event in _EVENTS]
            for name, _table in [*_TRIGGERS, _COMPANY, *sellers]:
                await Company.raw(f"DROP TRIGGER {name}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
