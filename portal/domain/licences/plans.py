"""A subscription's batches carry its plan's name: "Pro (annual license)", not the
product the seats are provisioned as (billing.provisioning makes them Premium).

An order belongs to a subscription when an invoice of the subscription pays for
it (purchase, renewal, change: the invoice's `order`), or when it is the order
of the subscription's current batch. The plan is the subscription's tier now,
named as its seller's catalogue names it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portal.tables import LicenceOrder


def plan_label(plan: str) -> str:
    """How a subscription's batch or order is named wherever a product name would show."""
    return f"{plan} (annual license)"


# Narrowed to the companies first (invoice.company and subscription.company are
# indexed; invoice."order" is not), then to the orders.
_PLAN_SQL = (
    "SELECT DISTINCT paid.order_id, item.name AS plan FROM ("
    ' SELECT i."order" AS order_id, i.subscription AS sub FROM invoice AS i'
    ' WHERE i.company IN ({companies}) AND i."order" IN ({orders}) AND i.subscription IS NOT NULL'
    " UNION"
    ' SELECT b."order", s.id FROM subscription AS s JOIN licence_batch AS b ON b.id = s.batch'
    ' WHERE s.company IN ({companies}) AND b."order" IN ({orders})'
    ") AS paid "
    "JOIN subscription AS s ON s.id = paid.sub "
    "JOIN catalogue_item AS item ON item.partner = s.partner AND item.code = s.tier"
)


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(int(i)) for i in sorted(set(ids)))  # integers written in: nothing to inject


async def plan_names(orders: Iterable[tuple[int, int]]) -> dict[int, str]:
    """The plan name of each (order id, company id) that a subscription's is, by
    order id; others are left out. One query, whatever the count."""
    pairs = list(orders)
    if not pairs:
        return {}
    sql = _PLAN_SQL.format(companies=_ids(c for _, c in pairs), orders=_ids(o for o, _ in pairs))
    return {row["order_id"]: row["plan"] for row in await LicenceOrder.raw(sql)}


async def name_by_plan(rows: Iterable[dict[str, Any]]) -> None:
    """Rows with `order_id`, `company_id` and `product_name`: a subscription's take its plan's name."""
    rows = list(rows)
    plans = await plan_names((row["order_id"], row["company_id"]) for row in rows)
    for row in rows:
        if row["order_id"] in plans:
            row["product_name"] = plan_label(plans[row["order_id"]])
