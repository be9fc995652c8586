"""A customer's automatic renewal, as its partner set it (migration portal_0011_auto_renewal;
portal/domain/licences/auto_renewal.py reads and applies it)."""

from __future__ import annotations

from piccolo.columns import ForeignKey, Integer, OnDelete, Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, User


class AutoRenewal(Table, tablename="auto_renewal"):
    id: Serial  # see portal/tables.py

    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True)
    mode = Varchar(length=10, default="off")  # off | renew | approve ("Needs approval")
    days_before = Integer(default=7)  # how long before a batch ends it is renewed
    quantity = Varchar(length=10, default="same")  # same | holders
    updated_at = Timestamptz(default=TimestamptzNow())
    updated_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
