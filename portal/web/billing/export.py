"""Invoices as CSV, as the list on screen filters them: every page, a chunk at a time,
cells that a spreadsheet would run as formulas written as text. And the ageing of
what they still owe: one row per customer and currency."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from portal.domain.access import Actor
from portal.domain.billing import invoices, receivables
from portal.domain.billing.money import format_money
from portal.domain.imports.export import csv_text
from portal.web.billing.common import KIND_LABELS, PAYMENT_LABELS, STATUS_LABELS

HEADER = (
    "Invoice",
    "Seller",
    "Customer",
    "Kind",
    "Status",
    "Issued",
    "Due",
    "Currency",
    "Subtotal",
    "Tax",
    "Total",
    "Total (cents)",
    "Paid",
    "Payment method",
    "Payment reference",
)


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def _row(inv: Mapping[str, Any]) -> tuple:
    currency = inv["currency"]
    return (
        invoices.format_invoice_number(inv["number"]) if inv.get("number") else "",
        inv.get("seller_name", ""),
        inv.get("company_name", ""),
        KIND_LABELS.get(inv["kind"], inv["kind"]),
        STATUS_LABELS.get(inv["status"], inv["status"]),
        _day(inv.get("issued_at")),
        _day(inv.get("due_at")),
        currency,
        format_money(inv["subtotal_cents"], currency),
        format_money(inv["tax_cents"], currency),
        format_money(inv["total_cents"], currency),
        inv["total_cents"],
        _day(inv.get("paid_at")),
        PAYMENT_LABELS.get(inv.get("payment_method") or "", inv.get("payment_method") or ""),
        inv.get("payment_reference") or "",
    )


async def invoices_csv(actor: Actor, filters: Mapping[str, Any]) -> AsyncIterator[str]:
    yield "\ufeff" + csv_text([HEADER])  # the BOM: Excel reads UTF-8
    async for chunk in invoices.iter_invoices(actor, filters):
        yield csv_text(_row(inv) for inv in chunk)


AGEING_HEADER = (
    "Customer",
    "Seller",
    "Currency",
    *(
        f"{bucket.label} overdue" if bucket.least is not None else "Current (not yet due)"
        for bucket in receivables.BUCKETS
    ),
    "Outstanding",
    "Unpaid invoices",
)


def _amount(cents: int) -> str:
    """ "1234.56": a number a spreadsheet sums (the currency has its own column)."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units}.{rest:02d}"


async def ageing_csv(actor: Actor, filters: Mapping[str, Any], now: datetime) -> AsyncIterator[str]:
    yield "\ufeff" + csv_text([AGEING_HEADER])
    rows = await receivables.ageing(actor, filters, now)
    for start in range(0, len(rows), 2000):
        yield csv_text(
            (
                row["customer"],
                row["seller"],
                row["currency"],
                *(_amount(row[bucket.key]) for bucket in receivables.BUCKETS),
                _amount(row["total_cents"]),
                row["invoices"],
            )
            for row in rows[start : start + 2000]
        )
