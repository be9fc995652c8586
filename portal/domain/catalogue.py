"""The licence catalogue and the arithmetic of terms."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from dateutil.relativedelta import relativedelta

from portal.tables import Product

PREMIUM = "sat-premium"
TRIAL = "sat-trial"
# The products themselves are rows the baseline migration writes.


def term_end(product: dict[str, Any], starts_at: datetime) -> datetime:
    """The same instant `term` later; calendar months, so 29 Feb + 12 months is 28 Feb."""
    if product.get("term_months"):
        return cast("datetime", starts_at + relativedelta(months=product["term_months"]))
    return cast("datetime", starts_at + relativedelta(days=product["term_days"]))


_products: list[dict[str, Any]] | None = None


async def products() -> list[dict[str, Any]]:
    """The catalogue changes only with a migration, so each process reads it once."""
    global _products
    if _products is None:
        _products = await Product.select().order_by(Product.is_trial).order_by(Product.id)
    return _products


async def product(product_id: int) -> dict[str, Any] | None:
    return next((p for p in await products() if p["id"] == product_id), None)


async def product_by_code(code: str) -> dict[str, Any]:
    row = next((p for p in await products() if p["code"] == code), None)
    if row is None:
        raise LookupError(f"product {code} is not in the catalogue; run migrations")
    return row
