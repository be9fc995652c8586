"""Tables of "Select Users by CSV": an uploaded file (`CsvImport`) and one row
per data row of it (`CsvImportRow`), with the address read from the chosen
column and what became of it. Migration portal_0002_csv_imports."""

from __future__ import annotations

from piccolo.columns import JSON, Boolean, ForeignKey, Integer, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, User


class CsvImport(Table, tablename="csv_import"):
    id: Serial  # see portal/tables.py
    company = ForeignKey(Company, on_delete=OnDelete.cascade, index=True)
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    filename = Varchar(length=255)
    # The uploaded bytes, kept under var/imports/ while a column may still be chosen.
    stored_as = Varchar(length=255)
    size_bytes = Integer(default=0)
    encoding = Varchar(length=40)
    delimiter = Varchar(length=4)
    has_header = Boolean(default=True)
    columns = JSON(default=[])
    email_column = Integer(null=True, default=None)
    add_unknown = Boolean(default=False)
    # previewed (a column chosen, rows classified) → queued (a job will apply it) → done
    status = Varchar(length=20, default="previewed")
    rows = Integer(default=0)
    # Counts by outcome at the preview, and what "Renew Licences" then did.
    preview = JSON(default={})
    # Set by triggers when the company's licences change after the preview
    # (migration portal_0008_csv_import_stale); a new preview clears it.
    stale = Boolean(default=False)
    result = JSON(default={})
    applied_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    applied_at = Timestamptz(null=True, default=None)


class CsvImportRow(Table, tablename="csv_import_row"):
    """A data row of the file: its line, the address read (null: none), a name
    for a new learner, and its outcome (renew, new, unknown, active, duplicate,
    invalid, no_seat)."""

    id: Serial  # see portal/tables.py

    csv_import = ForeignKey(CsvImport, on_delete=OnDelete.cascade, index=False)
    line = Integer()
    email = Varchar(length=320, null=True, default=None)
    name = Varchar(length=200, default="")
    cell = Text(default="")  # the chosen column's cell, as written
    outcome = Varchar(length=20, null=True, default=None)
    user_id = Integer(null=True, default=None)
