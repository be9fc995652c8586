"""Piccolo tables. Words as in DESIGN.md: company, user (manager or learner), audit entry."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

COMPANY_KINDS = ("partner", "sub_partner", "customer")
USER_ROLES = ("manager", "learner")


class Company(Table):
    name = Varchar(length=200)
    kind = Varchar(length=20, choices=None)
    parent = ForeignKey("self", null=True, on_delete=OnDelete.restrict, index=True)
    # Materialised ancestry "/1/7/42/": "under the wing of X" is a prefix test,
    # and listing a subtree is one indexed range scan instead of a recursive query.
    path = Varchar(length=255, index=True)
    created_at = Timestamptz(default=TimestamptzNow())


class User(Table, tablename="portal_user"):
    company = ForeignKey(Company, on_delete=OnDelete.restrict, index=True)
    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    role = Varchar(length=20)
    password_hash = Varchar(length=255, null=True, default=None)
    active = Boolean(default=True)
    failed_sign_ins = Integer(default=0)
    locked_until = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class PasswordToken(Table):
    """A one-time set-password link; only the token's sha256 is stored."""

    user = ForeignKey(User, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)


class AuditEntry(Table):
    at = Timestamptz(default=TimestamptzNow(), index=True)
    actor = ForeignKey(User, null=True, on_delete=OnDelete.set_null, index=True)
    # The company the actor was acting inside (manage mode) and the company acted on.
    acting_as = ForeignKey(Company, null=True, on_delete=OnDelete.set_null)
    company = ForeignKey(Company, null=True, on_delete=OnDelete.set_null, index=True)
    action = Varchar(length=50)
    detail = JSON(default={})
    # Set by jobs, which may run twice: a second insert with the same key is a no-op.
    dedupe_key = Varchar(length=120, null=True, default=None, unique=True)
