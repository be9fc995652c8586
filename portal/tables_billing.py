"""Tables of subscriptions and billing (issue 11, seed 000)."""

from __future__ import annotations

from piccolo.table import Table

# Every billing table, in creation order, for portal/piccolo_app.py.
BILLING_TABLES: list[type[Table]] = []
