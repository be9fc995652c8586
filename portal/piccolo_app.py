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
    PasswordToken,
    Product,
    User,
)

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
    ],
    migration_dependencies=[],
    commands=[],
)
