"""A partner's words and brand (migration portal_0026_partner_templates;
portal/domain/branding/ writes and reads them)."""

from __future__ import annotations

from piccolo.columns import Bytea, ForeignKey, Integer, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import Company


class PartnerEmailTemplate(Table, tablename="partner_email_template"):
    """A partner's own subject and text for one kind of e-mail; the HTML part is
    drawn from the text (the partner writes no HTML). One row per partner and kind."""

    id: Serial  # see portal/tables.py

    company = ForeignKey(Company, on_delete=OnDelete.cascade)
    kind = Varchar(length=50)
    subject = Varchar(length=300)
    body = Text()
    updated_at = Timestamptz(default=TimestamptzNow())
    updated_by = Integer(null=True, default=None)


class PartnerBrand(Table, tablename="partner_brand"):
    """A partner's logo (a small PNG or JPEG, kept here) and colour (#rrggbb)."""

    id: Serial

    company = ForeignKey(Company, on_delete=OnDelete.cascade, unique=True)
    colour = Varchar(length=7, null=True, default=None)
    logo = Bytea(null=True, default=None)
    logo_type = Varchar(length=20, null=True, default=None)
    # sha256 of the logo: its address (/brand/logo/<digest>), which changes with it.
    logo_digest = Varchar(length=64, null=True, default=None, index=True)
    updated_at = Timestamptz(default=TimestamptzNow())
    updated_by = Integer(null=True, default=None)


BRANDING_TABLES = [PartnerEmailTemplate, PartnerBrand]
