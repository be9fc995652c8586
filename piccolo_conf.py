"""For the `piccolo` CLI (migrations): the configuration lives in portal/db_conf.py."""

from portal.db_conf import APP_REGISTRY, DB

__all__ = ["APP_REGISTRY", "DB"]
