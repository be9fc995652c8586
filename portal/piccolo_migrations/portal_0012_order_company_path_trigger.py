from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-11-22T07:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "licence_order.company_path is set by the database from the company, on every insert"

# Whatever inserts an order (this code, an older release still running during a
# deploy, a script), its company_path is its company's: an order with a wrong
# path would drop out of every partner's list.
_POSTGRES = [
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
_SQLITE_SET = (
    "UPDATE licence_order SET company_path = (SELECT path FROM company WHERE id = NEW.company) WHERE id = NEW.id;"
)
_SQLITE = [
    f"CREATE TRIGGER licence_order_company_path AFTER INSERT ON licence_order BEGIN {_SQLITE_SET} END",
    f"CREATE TRIGGER licence_order_company_moved AFTER UPDATE OF company ON licence_order BEGIN {_SQLITE_SET} END",
]


class Company(Table, tablename="company"):
    pass


def _postgres() -> bool:
    return isinstance(Company._meta.db, PostgresEngine)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _POSTGRES if _postgres() else _SQLITE:
            await Company.raw(statement)

    async def drop() -> None:
        if _postgres():
            await Company.raw("DROP TRIGGER IF EXISTS licence_order_company_path ON licence_order")
            await Company.raw("DROP FUNCTION IF EXISTS licence_order_company_path()")
        else:
            await Company.raw("DROP TRIGGER IF EXISTS licence_order_company_path")
            await Company.raw("DROP TRIGGER IF EXISTS licence_order_company_moved")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
