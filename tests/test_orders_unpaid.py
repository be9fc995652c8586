"""Assign and the purchase invoice an order carries (seed 000: "the partner assigns
it once the payment is recorded, or at once if the partner's setting allows
assigning unpaid orders"): a voided invoice pays for nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal.domain.access import load_actor
from portal.domain.billing import invoices, profiles
from portal.domain.billing.quotes import Purchase
from portal.domain.billing.subscriptions import buy
from portal.domain.errors import ValidationFailed
from portal.domain.orders import decisions
from portal.tables import LicenceBatch, LicenceOrder
from portal.tables.billing import Invoice
from tests.support import PROCESSOR

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)


async def _bought_by_invoice(tree) -> tuple[dict, object]:
    customer = await load_actor(tree.managers["north"]["id"], None)
    seller = await load_actor(tree.managers["sub"]["id"], None)
    bought = await buy(customer, tree.north["id"], Purchase("pro", 0, 0, (), "invoice"), NOW, processor=PROCESSOR)
    return bought["invoice"], seller


async def test_an_order_whose_purchase_invoice_was_voided_is_not_assigned(tree):
    invoice, seller = await _bought_by_invoice(tree)
    await invoices.void(seller, invoice["id"], "Sent to the wrong address.", NOW)
    # Voiding declined the order; even put back to "requested" (as a row from before
    # that rule), a void invoice pays for nothing, where the seller assigns unpaid orders too.
    order = await LicenceOrder.select(LicenceOrder.status).where(LicenceOrder.id == invoice["order"]).first()
    assert order["status"] == "declined"
    await LicenceOrder.update({LicenceOrder.status: "requested"}).where(LicenceOrder.id == invoice["order"])
    await profiles.save_profile(seller, tree.sub["id"], currency="USD", tax_rate_bp=0, assign_unpaid=True, now=NOW)
    with pytest.raises(ValidationFailed, match="not paid yet"):
        await decisions.assign_order(seller, invoice["order"], NOW)
    assert await LicenceBatch.count() == 0


async def test_a_reissued_invoice_once_paid_lets_the_order_through(tree):
    invoice, seller = await _bought_by_invoice(tree)
    with pytest.raises(ValidationFailed, match="not paid yet"):
        await decisions.assign_order(seller, invoice["order"], NOW)
    again = await invoices.reissue(seller, invoice["id"], NOW)
    assert again["order"] == invoice["order"]
    await Invoice.update({Invoice.status: "paid", Invoice.paid_at: NOW}).where(Invoice.id == again["id"])
    batch = await decisions.assign_order(seller, invoice["order"], NOW)
    assert batch["seats"] == 10
