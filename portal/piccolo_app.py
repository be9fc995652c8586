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
from portal.tables_billing import BILLING_TABLES
from portal.tables_dashboard import DashboardFigure
from portal.tables_imports import CsvImport, CsvImportRow
from portal.tables_renewal import AutoRenewal
from portal.tables_sign_in import SIGN_IN_TABLES

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
        *SIGN_IN_TABLES,
    ],
    migration_dependencies=[],
    commands=[],
)
