"""The prepared-report add-ons get names a security-awareness partner sells
under: every seller whose catalogue still holds the first names (those of a
network-analysis product) gets the new ones; a name a partner chose stays.
Invoices already issued keep the names on their lines.

Raw SQL on both engines, nothing imported from the portal. Backward: the first
names again, for the items that still carry the new ones."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-07T10:33:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "prepared-report add-ons named for a security-awareness partner"

# code, first name, new name
NAMES = (
    ("report_summary", "Network summary report", "Phishing simulation report"),
    ("report_ecosystem", "Ecosystem report", "Security awareness benchmark report"),
    ("report_full", "Full data science report", "Human risk assessment report"),
)
_RENAME = "UPDATE catalogue_item SET name = {} WHERE code = {} AND kind = 'addon' AND name = {}"


class Company(Table, tablename="company"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="portal", description=DESCRIPTION)

    async def rename() -> None:
        for code, first, new in NAMES:
            await Company.raw(_RENAME, new, code, first)

    async def name_back() -> None:
        for code, first, new in NAMES:
            await Company.raw(_RENAME, first, code, new)

    manager.add_raw(rename)
    manager.add_raw_backwards(name_back)
    return manager
