"""The resources of /api/v1, a page at a time after a cursor, each one statement
over the rows under the key's partner (the same `under_wing` rule as the pages).
Rows come back as the API shows them: ids, not names of foreign keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain.access import Actor, under_wing
from portal.domain.errors import NotFound
from portal.domain.licences.status import licence_status
from portal.tables import Company

# (select list; FROM with its joins, `company` being the row's company, on whose path the wing is checked; id column)
_RESOURCES: dict[str, tuple[str, str, str]] = {
    "companies": (
        "company.id, company.name, company.kind, company.parent AS parent_id, company.created_at",
        "company",
        "company.id",
    ),
    "users": (
        "u.id, u.company AS company_id, u.email, u.name, u.role, u.active, u.licence_ends_at, u.created_at",
        "portal_user AS u JOIN company ON company.id = u.company",
        "u.id",
    ),
    "orders": (
        "o.id, o.company AS company_id, p.code AS product, o.quantity, o.status, o.po_number, o.requested_at, "
        "o.decided_at, o.decline_reason, o.renews_batch AS renews_batch_id, b.id AS batch_id",
        "licence_order AS o JOIN company ON company.id = o.company JOIN product AS p ON p.id = o.product "
        'LEFT JOIN licence_batch AS b ON b."order" = o.id',
        "o.id",
    ),
    "batches": (
        'b.id, b.company AS company_id, b."order" AS order_id, p.code AS product, b.seats, b.allocated, '
        "b.starts_at, b.ends_at",
        "licence_batch AS b JOIN company ON company.id = b.company JOIN product AS p ON p.id = b.product",
        "b.id",
    ),
    "allocations": (
        'a.id, a.batch AS batch_id, a."user" AS user_id, b.company AS company_id, a.starts_at, a.ends_at, '
        "a.released_at",
        "allocation AS a JOIN licence_batch AS b ON b.id = a.batch JOIN company ON company.id = b.company",
        "a.id",
    ),
    "invoices": (
        "i.id, i.company AS company_id, i.partner AS seller_id, i.number, i.kind, i.status, i.currency, "
        "i.subtotal_cents, i.tax_cents, i.total_cents, i.issued_at, i.due_at, i.paid_at, i.payment_method, "
        "i.payment_reference, i.voided_at",
        "invoice AS i JOIN company ON company.id = i.company",
        "i.id",
    ),
    "payments": (
        "ch.id, ch.invoice AS invoice_id, i.company AS company_id, ch.attempt, ch.amount_cents, ch.currency, "
        "ch.status, ch.processor_ref AS reference, ch.decline_reason, ch.attempted_at",
        "card_charge AS ch JOIN invoice AS i ON i.id = ch.invoice JOIN company ON company.id = i.company",
        "ch.id",
    ),
}
# Narrowing a list by a column: the query parameter → the SQL column.
FILTERS: dict[str, dict[str, str]] = {
    "users": {"company_id": "u.company"},
    "orders": {"company_id": "o.company", "status": "o.status"},
    "batches": {"company_id": "b.company"},
    "allocations": {"company_id": "b.company", "batch_id": "a.batch"},
    "invoices": {"company_id": "i.company", "status": "i.status"},
    "payments": {"company_id": "i.company", "invoice_id": "ch.invoice"},
}


def _shaped(resource: str, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    for key, value in row.items():
        if isinstance(value, str) and key.endswith("_at") and value:
            row[key] = datetime.fromisoformat(value)  # SQLite hands back its text
    if resource == "users":
        row["active"] = bool(row["active"])
        row["status"] = licence_status(row["licence_ends_at"], now) if row["active"] else "deactivated"
    return row


async def page(
    actor: Actor, resource: str, after: int, limit: int, filters: dict[str, Any], now: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` rows with an id above `after`, by id, and whether more follow."""
    columns, source, id_column = _RESOURCES[resource]
    clauses, args = ["{}", f"{id_column} > {{}}"], [under_wing(actor).querystring, after]
    for name, value in filters.items():
        if value is not None:
            clauses.append(f"{FILTERS[resource][name]} = {{}}")
            args.append(value)
    sql = f"SELECT {columns} FROM {source} WHERE {' AND '.join(clauses)} ORDER BY {id_column} LIMIT {int(limit) + 1}"
    rows = await Company.raw(sql, *args)
    return [_shaped(resource, row, now) for row in rows[:limit]], len(rows) > limit


async def one(actor: Actor, resource: str, row_id: int, now: datetime) -> dict[str, Any]:
    """One row under the wing; another partner's id is "not found", as an unknown one."""
    columns, source, id_column = _RESOURCES[resource]
    rows = await Company.raw(
        f"SELECT {columns} FROM {source} WHERE {{}} AND {id_column} = {{}}", under_wing(actor).querystring, row_id
    )
    if not rows:
        raise NotFound(
            f"No such {resource.removesuffix('s').replace('companie', 'company').replace('batche', 'batch')}."
        )
    return _shaped(resource, rows[0], now)
