"""The Admin Dashboard's figures per company, kept (migration portal_0004_dashboard_figures).

A row is the company's figures as computed at `computed_at` (NULL: stale, to be
computed again), with the next instants at which the clock alone changes them.
Triggers on licence_tally, licence_batch and licence_order mark a row stale,
and those on licence_batch raise its batch_version (portal_0030_dashboard_paging);
portal/domain/dashboard/figures.py reads, recomputes and writes the rows."""

from __future__ import annotations

from piccolo.columns import BigInt, ForeignKey, Integer, OnDelete, Serial, Timestamptz
from piccolo.table import Table

from portal.tables import Company


class DashboardFigure(Table, tablename="dashboard_figure"):
    id: Serial  # see portal/tables.py

    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True, index=False)
    computed_at = Timestamptz(null=True, default=None)
    # The earliest instant after computed_at at which a tally row's end passes
    # (expired), a batch starts or ends (free seats, next end), and a tally end
    # comes within 72 hours or within 30 days (the expiring figures). NULL: none.
    next_change = Timestamptz(null=True, default=None)
    next_batch_change = Timestamptz(null=True, default=None)
    next_72h = Timestamptz(null=True, default=None)
    next_30d = Timestamptz(null=True, default=None)
    next_end = Timestamptz(null=True, default=None)
    expired = Integer(default=0)
    expiring_72h = Integer(default=0)
    expiring_30d = Integer(default=0)
    unlicensed = Integer(default=0)
    free = Integer(default=0)
    pending = Integer(default=0)
    # A stamp raised whenever a batch of the company changes (migration 0030): the
    # wing's highest is the version the forecast is kept under.
    batch_version = BigInt(default=0)
