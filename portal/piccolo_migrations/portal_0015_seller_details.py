"""The seller on its invoices: `billing_profile.legal_name`, `address`, `tax_id` and
`payment_instructions` (bank details, where to send a check), printed on every
invoice and credit note. Empty by default: an invoice then names the company and
says nothing more, as before.

Raw SQL on both engines, nothing imported from the portal. Backward: drops the
four columns (invoices already downloaded keep what they printed)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T14:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing_profile: the seller's name, address, tax id and payment instructions on invoices"


class Company(Table, tablename="company"):
    pass


_COLUMNS = (
    ("legal_name", 200),
    ("address", 500),
    ("tax_id", 50),
    ("payment_instructions", 1000),
)
_CREATE = [
    f'ALTER TABLE "billing_profile" ADD COLUMN "{name}" VARCHAR({length}) NOT NULL DEFAULT \'\''
    for name, length in _COLUMNS
]
_DROP = [f'ALTER TABLE "billing_profile" DROP COLUMN "{name}"' for name, _ in reversed(_COLUMNS)]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def create() -> None:
        for statement in _CREATE:
            await Company.raw(statement)

    async def drop() -> None:
        for statement in _DROP:
            await Company.raw(statement)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
