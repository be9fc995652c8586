"""Billing pages: the customer's billing dashboard and the partner's."""

from __future__ import annotations

from typing import Any

from portal.web.billing.actions import SubscriptionActionController
from portal.web.billing.customer import CustomerBillingController
from portal.web.billing.invoice_pages import InvoiceController
from portal.web.billing.partner import PartnerBillingController
from portal.web.billing.refund_pages import CreditNoteController, RefundController
from portal.web.billing.webhooks import stripe_webhook

# Registered by portal/web/app.py beside the other page controllers.
BILLING_ROUTES: list[Any] = [
    CustomerBillingController,
    PartnerBillingController,
    SubscriptionActionController,
    InvoiceController,
    RefundController,
    CreditNoteController,
    stripe_webhook,
]
