"""The licence catalogue and the arithmetic of terms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta

from portal.tables import Product

PREMIUM = "sat-premium"
TRIAL = "sat-trial"
CATALOGUE: list[dict[str, Any]] = [
    {"code": PREMIUM, "name": "Security Awareness Training — Premium", "term_months": 12, "is_trial": False},
    {"code": TRIAL, "name": "Security Awareness Training — Free trial", "term_days": 30, "is_trial": True},
]


def term_end(product: dict, starts_at: datetime) -> datetime:
    """The same instant `term` later; calendar months, so 29 Feb + 12 months is 28 Feb."""
    if product.get("term_months"):
        return starts_at + relativedelta(months=product["term_months"])
    return starts_at + relativedelta(days=product["term_days"])


async def ensure_catalogue() -> None:
    """Insert the catalogue's products that are missing (idempotent)."""
    have = {row["code"] for row in await Product.select(Product.code)}
    missing = [Product(**item) for item in CATALOGUE if item["code"] not in have]
    if missing:
        await Product.insert(*missing).on_conflict(action="DO NOTHING")


_products: list[dict] | None = None


async def products() -> list[dict]:
    """The catalogue changes only with a migration, so each process reads it once."""
    global _products
    if _products is None:
        _products = await Product.select().order_by(Product.is_trial).order_by(Product.id)
    return _products


async def product(product_id: int) -> dict | None:
    return next((p for p in await products() if p["id"] == product_id), None)


async def product_by_code(code: str) -> dict:
    row = next((p for p in await products() if p["code"] == code), None)
    if row is None:
        raise LookupError(f"product {code} is not in the catalogue; run migrations and ensure_catalogue")
    return row
