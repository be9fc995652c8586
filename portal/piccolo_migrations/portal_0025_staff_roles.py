"""Partner staff get roles: partner_admin, account_manager, billing, read_only
(portal/domain/access.py says what each may do). Every manager of a partner or
sub-partner could do everything, so each becomes a partner admin; customers'
managers keep "manager". `portal_user.role` is VARCHAR(20), wide enough for
"account_manager". Raw SQL on both engines. Backward: every staff role that
could change anything is "manager" again."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T14:11:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Partner staff roles: partner managers become partner admins"


class Company(Table, tablename="company"):
    pass


_STAFF = "(SELECT id FROM company WHERE kind IN ('partner', 'sub_partner'))"
_FORWARDS = [f"UPDATE portal_user SET role = 'partner_admin' WHERE role = 'manager' AND company IN {_STAFF}"]
_BACKWARDS = [
    "UPDATE portal_user SET role = 'manager' WHERE role IN ('partner_admin', 'account_manager', 'billing')"
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def promote() -> None:
        for statement in _FORWARDS:
            await Company.raw(statement)

    async def demote() -> None:
        for statement in _BACKWARDS:
            await Company.raw(statement)

    manager.add_raw(promote)
    manager.add_raw_backwards(demote)
    return manager
