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
from portal.tables_audit import AuditRetention
from portal.tables_billing import BILLING_TABLES
from portal.tables_branding import BRANDING_TABLES
from portal.tables_bulk import BULK_TABLES
from portal.tables_dashboard import DashboardFigure
from portal.tables_imports import CsvImport, CsvImportRow
from portal.tables_renewal import AutoRenewal
from portal.tables_scim import SCIM_TABLES
from portal.tables_sign_in import SIGN_IN_TABLES
from portal.tables_sso import SSO_TABLES
from portal.tables_webhooks import WEBHOOK_TABLES

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
