"""Piccolo tables of the tenant tree, its users and their licences. Words as in
docs/architecture.md ("under its wing", licence batches, seats): company, user
(manager or learner), audit entry. Each other concern keeps its tables in a
module of this package (billing, imports, dashboard, scim, ...).

`id: Serial` on each table is an annotation only: Piccolo adds that primary
key itself, and the annotation tells the type checker it is there.

A column's `choices=` (a StrEnum: its values as stored) is no part of the schema,
so naming it needs no migration; its members equal their strings, so rows read
back as plain strings compare equal to them."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class CompanyKind(StrEnum):
    PARTNER = "partner"
    SUB_PARTNER = "sub_partner"
    CUSTOMER = "customer"


class Role(StrEnum):
    """A user's role (portal_user.role). A customer's users are managers, read-only
    managers and learners; a partner's or sub-partner's are its staff (STAFF_ROLES)."""

    MANAGER = "manager"
    # Sees its company's pages and changes nothing (read-only credits, seed 000).
    READ_ONLY = "read_only"
    LEARNER = "learner"
    PARTNER_ADMIN = "partner_admin"
    ACCOUNT_MANAGER = "account_manager"
    BILLING = "billing"


class OrderStatus(StrEnum):
    REQUESTED = "requested"
    ASSIGNED = "assigned"
    DECLINED = "declined"
    CANCELLED = "cancelled"


COMPANY_KINDS = tuple(CompanyKind)
CUSTOMER_ROLES = (Role.MANAGER, Role.READ_ONLY, Role.LEARNER)
# Partner and sub-partner staff: what each may do is portal/domain/access.py's ROLE_CAPABILITIES.
STAFF_ROLES = (Role.PARTNER_ADMIN, Role.ACCOUNT_MANAGER, Role.BILLING, Role.READ_ONLY)
USER_ROLES = tuple(Role)
# Who signs in: everyone but learners.
MANAGER_ROLES = (Role.MANAGER, Role.READ_ONLY, Role.PARTNER_ADMIN, Role.ACCOUNT_MANAGER, Role.BILLING)
# Who acts on a company's customers and orders, and so gets its order and licence e-mails.
ACCOUNT_ROLES = (Role.MANAGER, Role.PARTNER_ADMIN, Role.ACCOUNT_MANAGER)
ACCOUNT_ROLES_SQL = "(" + ", ".join(f"'{role}'" for role in ACCOUNT_ROLES) + ")"  # constants only: safe in SQL
# Who gets a company's billing e-mails (renewal notices).
BILLING_ROLES = (Role.MANAGER, Role.PARTNER_ADMIN, Role.BILLING)


class Company(Table):
    id: Serial
    # Unique among siblings whatever the case: index on (coalesce(parent, 0), lower(name)), in the baseline migration.
    name = Varchar(length=200)
    kind = Varchar(length=20, choices=CompanyKind)
    parent: ForeignKey[Company] = ForeignKey("self", null=True, on_delete=OnDelete.restrict, index=True)
    # Materialised ancestry "/1/7/42/": "under the wing of X" is a prefix test,
    # and listing a subtree is one indexed range scan instead of a recursive query.
    path = Varchar(length=255, index=True)
    created_at = Timestamptz(default=TimestamptzNow())
    # IANA name; e-mails give a batch's end in the company's own time.
    time_zone = Varchar(length=64, default="UTC")


class User(Table, tablename="portal_user"):
    id: Serial
    # Indexed by (company, name, id) and (company, licence_ends_at): the baseline migration.
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=False)
    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    role = Varchar(length=20, choices=Role)
    password_hash = Varchar(length=255, null=True, default=None)
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    # The end of the user's latest seat (null: never licensed). Kept with the
    # allocations; a user's licence status compares it with the clock at read
    # time, so a batch that ends expires its seats at that instant with no job.
    licence_ends_at = Timestamptz(null=True, default=None)
    # The manager switched off the 72-hour and expiry e-mails (order and password e-mails still go).
    reminders_off = Boolean(default=False)
    # A partner manager switched the weekly digest off (portal/domain/emails/digest.py).
    digest_off = Boolean(default=False)
    # Raised when all the user's sessions end (a new password); a session holds
    # the number it was signed in at and counts only while the two are equal.
    session_generation = Integer(default=0)


class PartnerSetting(Table):
    """What a partner decides for the companies under its wing. A company without
    a row of its own follows its nearest ancestor's; with none, the defaults here
    (portal/domain/partner_settings.py reads them)."""

    id: Serial

    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True)
    # Request Licenses refuses a quantity above this, as a typing slip rather than an order.
    max_order_quantity = Integer(default=10_000)
    # The Admin Dashboard flags a customer whose free seats are at or below this while learners wait.
    low_seat_threshold = Integer(default=0)
    # Days before a batch ends at which its customer's managers are reminded ("7,3").
    reminder_days = Varchar(length=40, default="3")
    # Whether the partner's account managers get a copy of those reminders.
    copy_account_managers = Boolean(default=False)
    reply_to = Varchar(length=254, null=True, default=None)  # None: the first account manager
    sender_name = Varchar(length=100, null=True, default=None)  # None: the partner's name
    # Managers of this company and of the partners below it must sign in with a second factor.
    two_factor_staff = Boolean(default=False)
    # Managers of the customers under its wing must too.
    two_factor_customers = Boolean(default=False)
    updated_at = Timestamptz(default=TimestamptzNow())
    updated_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)


class LicenceTally(Table):
    """How many active users of a company have `licence_ends_at` = `ends_at`
    (None: never licensed). The Licenses tabs' counts sum a company's few rows
    against the clock instead of counting its users one by one. Kept by
    triggers on portal_user (the baseline migration), so no write path can forget it."""

    id: Serial

    company = ForeignKey(Company, on_delete=OnDelete.cascade, index=False)
    ends_at = Timestamptz(null=True, default=None)
    users = Integer(default=0)


class PasswordToken(Table):
    """A one-time set-password link; only the token's sha256 is stored."""

    id: Serial

    user = ForeignKey(User, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)


class AuditEntry(Table):
    id: Serial
    at = Timestamptz(default=TimestamptzNow(), index=True)
    actor = ForeignKey(User, null=True, on_delete=OnDelete.set_null, index=True)
    # The company the actor was acting inside (manage mode) and the company acted on.
    acting_as = ForeignKey(Company, null=True, on_delete=OnDelete.set_null)
    company = ForeignKey(Company, null=True, on_delete=OnDelete.set_null, index=True)
    action = Varchar(length=50)
    detail = JSON(default={})
    # Set by jobs, which may run twice: a second insert with the same key is a no-op.
    dedupe_key = Varchar(length=120, null=True, default=None, unique=True)


class Product(Table):
    """A licence type of the catalogue: Premium (12 months) or the 30-day Free trial."""

    id: Serial

    code = Varchar(length=40, unique=True)
    name = Varchar(length=200)
    term_months = Integer(null=True, default=None)
    term_days = Integer(null=True, default=None)
    is_trial = Boolean(default=False)


class LicenceOrder(Table):
    """A request for N licences of a product for one customer:
    requested → assigned / declined / cancelled."""

    id: Serial

    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    # The company's path (companies never move), set by the database on insert
    # (the baseline migration): "every order under my wing" is then a filter on this
    # table alone, with no join to company (docs/architecture.md, Tenancy).
    company_path = Varchar(length=255, default="")
    product = ForeignKey(Product, on_delete=OnDelete.restrict, index=True)
    quantity = Integer()
    status = Varchar(length=20, default=OrderStatus.REQUESTED, index=True, choices=OrderStatus)
    po_number = Varchar(length=64, null=True, default=None)
    requested_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null, index=True)
    requested_at = Timestamptz(default=TimestamptzNow(), index=True)
    decided_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    decided_at = Timestamptz(null=True, default=None)
    decline_reason = Varchar(length=500, null=True, default=None)
    # The batch this order renews (a licence_batch id; a foreign key in migration 0007):
    # assigned, its batch starts where that one ends and takes over that one's holders.
    renews_batch = Integer(null=True, default=None)
    # "End with the current term": the end of the company's term this order's batch
    # ends with (licences.coterm), chosen at the request; NULL: 12 months from Assign.
    coterm_ends_at = Timestamptz(null=True, default=None)


class LicenceBatch(Table):
    """What assigning an order creates: `seats` seats whose clock runs from
    `starts_at` (the assignment) to `ends_at`, for every seat alike."""

    id: Serial

    order = ForeignKey(LicenceOrder, on_delete=OnDelete.restrict, unique=True)
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    product = ForeignKey(Product, on_delete=OnDelete.restrict)
    seats = Integer()
    # Seats held now (allocations not released); kept with the allocations under
    # the company's write lock, so "free seats" needs no count.
    allocated = Integer(default=0)
    starts_at = Timestamptz()
    ends_at = Timestamptz(index=True)


class Allocation(Table):
    """One seat of one batch held by one user. Coverage runs from `starts_at` (the
    allocation, or the end of the user's previous seat when renewing early) to
    the batch's end, copied to `ends_at` so a user's status is one indexed read."""

    id: Serial

    batch = ForeignKey(LicenceBatch, on_delete=OnDelete.restrict, index=True)
    user = ForeignKey(User, on_delete=OnDelete.restrict, index=True)
    allocated_at = Timestamptz()
    allocated_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    starts_at = Timestamptz()
    ends_at = Timestamptz()
    released_at = Timestamptz(null=True, default=None)


class OutboxEmail(Table):
    """E-mails written in the transaction of the change that causes them;
    workers deliver them. `dedupe_key` makes a second write of the same notice a no-op."""

    id: Serial

    kind = Varchar(length=40)
    company = ForeignKey(Company, null=True, on_delete=OnDelete.set_null, index=True)
    to_email = Varchar(length=254)
    subject = Varchar(length=300)
    body = Text()
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    sent_at = Timestamptz(null=True, default=None)
    dedupe_key = Varchar(length=200, null=True, default=None, unique=True)
    # Delivery: queued → sent | captured (no SMTP_URL) | failed.
    # A worker claims a row by writing its token and a lease; a claim whose
    # lease ran out (the worker died) is taken again by the next worker.
    status = Varchar(length=12, default="queued")
    html = Text(null=True, default=None)
    batch = Integer(null=True, default=None)  # the licence batch a reminder is about
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=None)  # null: due now
    claimed_until = Timestamptz(null=True, default=None)
    claim_token = Varchar(length=32, null=True, default=None)
    error = Text(null=True, default=None)  # the SMTP server's answer when it failed
    sender = Varchar(length=300, null=True, default=None)  # the From header, as sent
    reply_to = Varchar(length=254, null=True, default=None)
    resent_from = Integer(null=True, default=None)
    # The facts the kind's templates are rendered from when it goes (JSON);
    # None for rows that carry their text (queued before, or copies resent as they were).
    data = Text(null=True, default=None)


class ApiKey(Table):
    """A partner's key for the entitlements API; only its sha256 is stored."""

    id: Serial

    company = ForeignKey(Company, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=100)
    prefix = Varchar(length=12)
    key_hash = Varchar(length=64, unique=True)
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    revoked_at = Timestamptz(null=True, default=None)
    scopes = Varchar(length=100, default="read")  # comma-separated: read, orders, billing
