"""Single sign-on with OpenID Connect (migration portal_0024_single_sign_on;
portal/domain/sso/ reads and writes them)."""

from __future__ import annotations

from piccolo.columns import Boolean, ForeignKey, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, User


class SsoConfig(Table, tablename="sso_config"):
    """A partner's identity provider. Its staff and the managers of the customers
    under its wing whose addresses are of its domains sign in there.

    The client secret is stored as the partner gave it: the database is the
    secret's protection (docs/sign-in.md says to encrypt the volume or column)."""

    id: Serial  # see portal/tables.py

    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True)
    issuer = Varchar(length=500)
    client_id = Varchar(length=300)
    client_secret = Text()
    # A verified address of its domains with no account gets a manager of the partner itself.
    create_on_first_sign_in = Boolean(default=False)
    # The partner's own staff (and its sub-partners') may not sign in with a password.
    sso_only_for_staff = Boolean(default=False)
    # A sign-in through the provider counts as two-factor: the portal asks no second factor.
    trust_provider_mfa = Boolean(default=False)
    updated_at = Timestamptz(default=TimestamptzNow())
    updated_by = ForeignKey(User, on_delete=OnDelete.set_null, null=True, default=None)


class SsoDomain(Table, tablename="sso_domain"):
    """An e-mail domain (lower case) and the partner's provider it signs in at; unique."""

    id: Serial

    config = ForeignKey(SsoConfig, on_delete=OnDelete.cascade, index=True)
    domain = Varchar(length=253, unique=True)


class SsoAttempt(Table, tablename="sso_attempt"):
    """One sign-in sent to the provider. The callback takes it once (used_at):
    a second arrival of the same answer is refused."""

    id: Serial

    config = ForeignKey(SsoConfig, on_delete=OnDelete.cascade, index=False)
    state = Varchar(length=64, unique=True)
    nonce = Varchar(length=64)
    code_verifier = Varchar(length=128)
    next_path = Varchar(length=500, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz(index=True)
    used_at = Timestamptz(null=True, default=None)


SSO_TABLES = [SsoConfig, SsoDomain, SsoAttempt]
