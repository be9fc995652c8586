import os

from piccolo.conf.apps import AppConfig

from portal.tables import (
    Allocation,
    ApiKey,
    AuditEntry,
    Company,
    LicenceBatch,
    LicenceOrder,
    LicenceTally,
    OutboxEmail,
    PartnerSetting,
    PasswordToken,
    Product,
    User,
)
from portal.tables.audit import AuditRetention
from portal.tables.billing import BILLING_TABLES
from portal.tables.branding import BRANDING_TABLES
from portal.tables.bulk import BULK_TABLES
from portal.tables.dashboard import DashboardFigure
from portal.tables.imports import CsvImport, CsvImportRow
from portal.tables.renewal import AutoRenewal
from portal.tables.scim import SCIM_TABLES
from portal.tables.sign_in import SIGN_IN_TABLES
from portal.tables.sso import SSO_TABLES
from portal.tables.webhooks import WEBHOOK_TABLES

APP_CONFIG = AppConfig(
    app_name="portal",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[
        Company,
        User,
        LicenceTally,
        PasswordToken,
        AuditEntry,
        Product,
        LicenceOrder,
        LicenceBatch,
        Allocation,
        OutboxEmail,
        ApiKey,
        CsvImport,
        CsvImportRow,
        PartnerSetting,
        DashboardFigure,
        *BILLING_TABLES,
        AutoRenewal,
        *WEBHOOK_TABLES,
        *SCIM_TABLES,
        *BULK_TABLES,
        AuditRetention,
        *SIGN_IN_TABLES,
        *SSO_TABLES,
        *BRANDING_TABLES,
    ],
    migration_dependencies=[],
    commands=[],
)
