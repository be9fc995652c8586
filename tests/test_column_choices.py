"""The columns that name their values (`choices=`, a StrEnum): every value fits in
its column, and a default a table declares is one of its values."""

from __future__ import annotations

from collections.abc import Iterator

from piccolo.columns import Column, Varchar
from piccolo.table import Table

from portal.piccolo_app import APP_CONFIG


def _named_values() -> Iterator[tuple[type[Table], Column]]:
    for table in APP_CONFIG.table_classes:
        for column in table._meta.columns:
            if column._meta.choices is not None:
                yield table, column


def test_the_statuses_and_kinds_name_their_values():
    named = {f"{table._meta.tablename}.{column._meta.name}" for table, column in _named_values()}
    assert {
        "company.kind",
        "portal_user.role",
        "licence_order.status",
        "subscription.status",
        "subscription.method",
        "invoice.status",
        "invoice.payment_method",
    } <= named


def test_every_value_fits_its_column_and_a_default_is_a_value():
    for table, column in _named_values():
        where = f"{table._meta.tablename}.{column._meta.name}"
        assert isinstance(column, Varchar), where
        values = {member.value for member in column._meta.choices}
        too_long = [value for value in values if len(value) > column.length]
        assert not too_long, f"{where} holds {column.length} characters: {too_long}"
        # "": Varchar's own default, where the table declares none (every insert names one).
        default = column._meta.params.get("default")
        assert default in (None, "") or default in values, f"{where} defaults to {default!r}"
