"""SCIM provisioning: a customer's tokens, and what an identity provider wrote
about each user it provisioned (migration portal_0020_scim; portal/domain/scim
reads and writes them)."""

from __future__ import annotations

from piccolo.columns import ForeignKey, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company, User


class ScimToken(Table, tablename="scim_token"):
    """A bearer token of one customer company for /scim/v2; only its sha256 is stored."""

    id: Serial  # see portal/tables.py

    company = ForeignKey(Company, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=100)
    prefix = Varchar(length=12)
    token_hash = Varchar(length=64, unique=True)
    # Changes made with the token are audited in its creator's name.
    created_by = ForeignKey(User, on_delete=OnDelete.cascade)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class ScimUser(Table, tablename="scim_user"):
    """The identity provider's view of a user: its userName (unique in the
    company, compared without case) and the other attributes it wrote, kept as
    JSON so that what it reads back is what it sent. The portal's own name, e-mail
    and active flag stay on portal_user and win where the two differ."""

    id: Serial

    portal_user = ForeignKey(User, on_delete=OnDelete.cascade, unique=True)
    company = ForeignKey(Company, on_delete=OnDelete.cascade, index=False)
    user_name = Varchar(length=300)
    user_name_key = Varchar(length=300)  # lower-cased; unique per company among the undeleted (the migration's index)
    external_id = Varchar(length=300, null=True, default=None)
    attributes = Text(default="{}")
    # Deleted by the provider: the learner stays in the portal, deactivated, unseen by SCIM.
    deleted_at = Timestamptz(null=True, default=None)


SCIM_TABLES = [ScimToken, ScimUser]
