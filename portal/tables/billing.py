"""Tables of subscriptions and billing (seed 000). Migration portal_0005_billing.

The seller is a partner, the buyer a customer company under its wing. Money is
whole cents in integer columns (`*_cents`) and a tax rate in basis points
(825 = 8.25 %): exact on both engines; Python works in Decimal and rounds once."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import BigInt, Boolean, ForeignKey, Integer, OnDelete, Serial, Text, Varchar
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, LicenceBatch, LicenceOrder, User


class SubscriptionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    LAPSED = "lapsed"
    ENDED = "ended"


class BillingMethod(StrEnum):
    """How a subscription is paid: "Pay Online" (the card kept) or "Pay by Invoice"."""

    ONLINE = "online"
    INVOICE = "invoice"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    VOID = "void"


class PaymentMethod(StrEnum):
    """How an invoice was paid: online by card, or recorded by partner staff."""

    CARD = "card"
    BANK_TRANSFER = "bank_transfer"
    MONEY_ORDER = "money_order"
    CHECK = "check"
    CARD_BY_PHONE = "card_by_phone"


SUBSCRIPTION_STATUSES = tuple(SubscriptionStatus)
METHODS = tuple(BillingMethod)
INVOICE_STATUSES = tuple(InvoiceStatus)
PAYMENT_METHODS = tuple(PaymentMethod)


class BillingProfile(Table, tablename="billing_profile"):
    """A selling partner's billing settings and its invoice counter."""

    id: Serial  # see portal/tables.py
    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True)
    currency = Varchar(length=3, default="USD")
    tax_rate_bp = Integer(default=0)
    # Invoice orders may be assigned before their invoice is paid.
    assign_unpaid = Boolean(default=False)
    # The number the next issued invoice takes; taken under the row's lock, in the
    # transaction that issues, so numbers never skip or repeat.
    next_invoice_number = Integer(default=1)
    # Who the seller is on its invoices and credit notes (portal_0015_seller_details):
    # the name (blank: the company's), postal address, tax id, and the payment
    # instructions a Pay by Invoice customer reads (bank details, where to send a check).
    legal_name = Varchar(length=200, default="")
    address = Varchar(length=500, default="")
    tax_id = Varchar(length=50, default="")
    payment_instructions = Varchar(length=1000, default="")
    # The same for credit notes, a sequence of their own (migration portal_0014_refunds).
    next_credit_note_number = Integer(default=1)


class CatalogueItem(Table, tablename="catalogue_item"):
    """What a partner sells: tiers (Lite, Pro), user credits, add-ons."""

    id: Serial
    partner = ForeignKey(Company, on_delete=OnDelete.cascade, index=False)  # unique with code
    code = Varchar(length=40)
    kind = Varchar(length=20)  # tier | user_credit | addon
    name = Varchar(length=200)
    price_cents = BigInt(default=0)
    period = Varchar(length=10)  # year | month | once
    included_users = Integer(default=0)
    active = Boolean(default=True)


class BillingAccount(Table, tablename="billing_account"):
    """A buying company's billing address and the card kept for "Pay Online": only
    the processor's token and what a person recognises, never the number."""

    id: Serial
    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True)
    billing_name = Varchar(length=200, default="")
    billing_email = Varchar(length=254, default="")
    address = Varchar(length=500, default="")
    country = Varchar(length=2, default="")
    card_token = Varchar(length=64, null=True, default=None)
    card_brand = Varchar(length=20, null=True, default=None)
    card_last4 = Varchar(length=4, null=True, default=None)
    card_expires = Varchar(length=7, null=True, default=None)  # "2028-04"
    updated_at = Timestamptz(default=TimestamptzNow())


class Subscription(Table, tablename="subscription"):
    """An annual licence for a company: a tier, user credits, a billing method.
    pending (awaiting its first payment) → active → lapsed (unpaid at its end) | ended (cancelled, ran out)."""

    id: Serial
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    company_path = Varchar(length=255, default="")  # the wing filter, as on licence_order
    partner = ForeignKey(Company, on_delete=OnDelete.restrict, index=False)  # the seller
    tier = Varchar(length=40)
    extra_users = Integer(default=0)
    read_only_users = Integer(default=0)
    # Fewer users take effect at the next renewal.
    next_extra_users = Integer(null=True, default=None)
    next_read_only_users = Integer(null=True, default=None)
    method = Varchar(length=10, choices=BillingMethod)
    status = Varchar(length=10, default=SubscriptionStatus.PENDING, choices=SubscriptionStatus)
    auto_renew = Boolean(default=True)
    term_start = Timestamptz(null=True, default=None)
    term_end = Timestamptz(null=True, default=None, index=True)
    batch = ForeignKey(LicenceBatch, null=True, on_delete=OnDelete.set_null)  # the current term's seats
    cancel_requested_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)
    # Online renewal: a failed charge is tried again at this time.
    renewal_attempts = Integer(default=0)
    next_charge_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)


class Invoice(Table, tablename="invoice"):
    """Never edited once issued: void it and issue another."""

    id: Serial
    partner = ForeignKey(Company, on_delete=OnDelete.restrict, index=False)  # unique with number
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    company_path = Varchar(length=255, default="")
    subscription = ForeignKey(Subscription, null=True, on_delete=OnDelete.restrict, index=True)
    order = ForeignKey(LicenceOrder, null=True, on_delete=OnDelete.set_null)  # the seats it pays for
    number = Integer(null=True, default=None)  # given when issued
    status = Varchar(length=10, default=InvoiceStatus.DRAFT, choices=InvoiceStatus)
    kind = Varchar(length=20)  # purchase | renewal | change | addon
    currency = Varchar(length=3, default="USD")
    subtotal_cents = BigInt(default=0)
    tax_rate_bp = Integer(default=0)
    tax_cents = BigInt(default=0)
    total_cents = BigInt(default=0)
    term_start = Timestamptz(null=True, default=None)
    term_end = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    issued_at = Timestamptz(null=True, default=None)
    due_at = Timestamptz(null=True, default=None)
    paid_at = Timestamptz(null=True, default=None)
    payment_method = Varchar(length=20, null=True, default=None, choices=PaymentMethod)
    payment_reference = Varchar(length=100, null=True, default=None)
    recorded_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    voided_at = Timestamptz(null=True, default=None)
    void_reason = Varchar(length=300, null=True, default=None)
    replaces: ForeignKey[Invoice] = ForeignKey("self", null=True, on_delete=OnDelete.set_null)
    # "renewal:<subscription>:<term start>": a retried or doubled renewal job finds it taken.
    idempotency_key = Varchar(length=120, null=True, default=None, unique=True)


class InvoiceLine(Table, tablename="invoice_line"):
    id: Serial
    invoice = ForeignKey(Invoice, on_delete=OnDelete.cascade, index=True)
    position = Integer(default=0)
    code = Varchar(length=40, default="")
    description = Varchar(length=300)
    quantity = Integer(default=1)
    unit_cents = BigInt(default=0)
    amount_cents = BigInt(default=0)


class Charge(Table, tablename="card_charge"):
    """One attempt to charge a card for an invoice, as the processor answered."""

    id: Serial
    invoice = ForeignKey(Invoice, on_delete=OnDelete.restrict, index=True)
    attempt = Integer(default=1)
    amount_cents = BigInt(default=0)
    currency = Varchar(length=3, default="USD")
    status = Varchar(length=10)  # succeeded | declined
    processor_ref = Varchar(length=64, null=True, default=None)
    decline_reason = Varchar(length=200, null=True, default=None)
    attempted_at = Timestamptz()
    # "<invoice>:<attempt>": the processor is asked with it, so a retried job charges once.
    idempotency_key = Varchar(length=120, unique=True)


class StripeEvent(Table, tablename="stripe_event"):
    """An event Stripe sent to the webhook, kept once by its id as it
    arrived, then processed by a job: received → processed | ignored. Migration
    portal_0012_stripe_events."""

    id: Serial
    event_id = Varchar(length=255, unique=True)
    type = Varchar(length=100)
    payload = Text()  # the event's JSON, as verified
    received_at = Timestamptz()
    status = Varchar(length=10, default="received")
    processed_at = Timestamptz(null=True, default=None)
    outcome = Varchar(length=200, default="")


class CreditNote(Table, tablename="credit_note"):
    """What a refund gives back of a paid invoice, numbered like invoices (per seller,
    without gaps) and never edited. Migration portal_0014_refunds."""

    id: Serial
    partner = ForeignKey(Company, on_delete=OnDelete.restrict, index=False)  # unique with number
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    company_path = Varchar(length=255, default="")
    invoice = ForeignKey(Invoice, on_delete=OnDelete.restrict, index=True)
    number = Integer()
    currency = Varchar(length=3, default="USD")
    subtotal_cents = BigInt(default=0)
    tax_rate_bp = Integer(default=0)
    tax_cents = BigInt(default=0)
    total_cents = BigInt(default=0)
    reason = Varchar(length=300, default="")
    issued_at = Timestamptz()
    issued_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)


class CreditNoteLine(Table, tablename="credit_note_line"):
    id: Serial
    credit_note = ForeignKey(CreditNote, on_delete=OnDelete.cascade, index=True)
    position = Integer(default=0)
    code = Varchar(length=40, default="")
    description = Varchar(length=300)
    quantity = Integer(default=1)
    unit_cents = BigInt(default=0)
    amount_cents = BigInt(default=0)


class RefundMethod(StrEnum):
    CARD = "card"
    BY_HAND = "by_hand"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


REFUND_METHODS = tuple(RefundMethod)
REFUND_STATUSES = tuple(RefundStatus)


class Refund(Table, tablename="refund"):
    """Money given back for an invoice: to the card it was charged to, through the
    processor (pending → succeeded | failed), or by the seller by hand for a payment
    recorded by hand (succeeded at once: recorded as owed). Written before the
    processor is asked, keyed, so asking again never refunds twice."""

    id: Serial
    invoice = ForeignKey(Invoice, on_delete=OnDelete.restrict, index=True)
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=False)
    company_path = Varchar(length=255, default="")
    charge = ForeignKey(Charge, null=True, on_delete=OnDelete.set_null, index=False)
    method = Varchar(length=10, choices=RefundMethod)
    amount_cents = BigInt(default=0)
    currency = Varchar(length=3, default="USD")
    reason = Varchar(length=300, default="")
    status = Varchar(length=10, default=RefundStatus.PENDING, choices=RefundStatus)
    processor_ref = Varchar(length=64, null=True, default=None)
    failure = Varchar(length=200, null=True, default=None)
    # None: a refund of money taken for a void invoice, which invoiced nothing to credit.
    credit_note = ForeignKey(CreditNote, null=True, on_delete=OnDelete.set_null, index=False)
    requested_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null, index=False)
    requested_at = Timestamptz()
    # The processor is being asked since then (None: not yet); a try whose worker
    # died is taken over once the lease ran out.
    attempted_at = Timestamptz(null=True, default=None)
    settled_at = Timestamptz(null=True, default=None)
    idempotency_key = Varchar(length=120, unique=True)


# In creation order, for portal/piccolo_app.py.
BILLING_TABLES: list[type[Table]] = [
    BillingProfile,
    CatalogueItem,
    BillingAccount,
    Subscription,
    Invoice,
    InvoiceLine,
    Charge,
    StripeEvent,
    CreditNote,
    CreditNoteLine,
    Refund,
]
