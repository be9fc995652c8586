"""How long a partner keeps its audit log (migration portal_0021_audit_retention;
portal/domain/audit/retention.py reads it and deletes what is older)."""

from __future__ import annotations

from piccolo.columns import ForeignKey, Integer, OnDelete, Serial, Timestamptz
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, User


class AuditRetention(Table, tablename="audit_retention"):
    id: Serial  # see portal/tables.py

    # A partner or sub-partner; what it sets covers every company under its wing.
    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True)
    keep_months = Integer(default=24)
    updated_at = Timestamptz(default=TimestamptzNow())
    updated_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
