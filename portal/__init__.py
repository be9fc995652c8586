"""Licence renewal portal for software resellers."""

import os

os.environ.setdefault("PICCOLO_CONF", "portal.db_conf")
