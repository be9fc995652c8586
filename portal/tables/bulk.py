"""Bulk actions from the Admin Dashboard: a run (what the partner manager
confirmed, once per confirmation key) and one item per customer, batch or
order it covers, with what became of it. Migration portal_0017_bulk_actions."""

from __future__ import annotations

from piccolo.columns import ForeignKey, Integer, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, User

# queued → done (every item finished)
RUN_STATUSES = ("queued", "done")
# queued → done (the action applied) | skipped (why not, in `outcome`)
ITEM_STATUSES = ("queued", "done", "skipped")


class BulkRun(Table, tablename="bulk_run"):
    id: Serial  # see portal/tables.py
    company = ForeignKey(Company, on_delete=OnDelete.cascade)  # the partner whose manager ran it
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    # Drawn with the confirmation page: the same confirmation posted again finds its run.
    confirmation_key = Varchar(length=80, unique=True)
    action = Varchar(length=20)  # assign | renew | allocate | auto_renew
    said = Text(default="")  # what the confirmation said it would change
    total = Integer(default=0)
    status = Varchar(length=10, default="queued")
    created_at = Timestamptz(default=TimestamptzNow())
    finished_at = Timestamptz(null=True, default=None)


class BulkItem(Table, tablename="bulk_item"):
    id: Serial  # see portal/tables.py
    run = ForeignKey(BulkRun, on_delete=OnDelete.cascade)
    company = ForeignKey(Company, on_delete=OnDelete.cascade)
    target = Integer(null=True, default=None)  # the batch renewed or the order assigned; None: the customer
    label = Text(default="")  # what the item is, as the summary names it
    status = Varchar(length=10, default="queued")
    outcome = Text(default="")  # what was done, or why not
    finished_at = Timestamptz(null=True, default=None)


BULK_TABLES = [BulkRun, BulkItem]
