import os

from piccolo.conf.apps import AppConfig

from portal.tables import AuditEntry, Company, PasswordToken, User

APP_CONFIG = AppConfig(
    app_name="portal",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[Company, User, PasswordToken, AuditEntry],
    migration_dependencies=[],
    commands=[],
)
