"""The Piccolo engine and app registry, from DATABASE_URL (see portal/settings.py).

Piccolo finds this through PICCOLO_CONF, set in portal/__init__.py, so the
installed `portal` command works from any directory; the top-level
piccolo_conf.py re-exports it for the `piccolo` CLI.
"""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.base import Engine

from portal.settings import get_settings

settings = get_settings()

if settings.is_postgres:
    from piccolo.engine.postgres import PostgresEngine

    # Not plan_cache_mode=force_custom_plan, though it helps `company.path LIKE $1`:
    # it also re-plans every foreign-key check, which tripled a 50,000-seat allocation.
    DB: Engine = PostgresEngine(config={"dsn": settings.database_url})
else:
    from piccolo.engine.sqlite import SQLiteEngine

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    DB = SQLiteEngine(path=str(settings.sqlite_path), timeout=30)

APP_REGISTRY = AppRegistry(apps=["portal.piccolo_app"])
