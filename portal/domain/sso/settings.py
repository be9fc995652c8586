"""A partner's identity provider: what a partner manager sets, and which partner
an e-mail address's domain signs in with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.columns import Column

from portal import db
from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.audit import entries as audit
from portal.domain.errors import ValidationFailed
from portal.domain.sso.provider import check_issuer
from portal.tables import CompanyKind
from portal.tables.sso import SsoConfig, SsoDomain

MAX_DOMAINS = 20
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
# Mailboxes anyone can open: a partner naming one would send strangers to its provider.
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.com",
    }
)
RESET_USE_SSO = (
    "{company} signs its staff in through its own identity provider: there is no portal password to reset. "
    "Go to Sign in, enter your e-mail and leave the password empty."
)
STAFF_USE_SSO = (
    "{company} signs its staff in through its own identity provider, not with a password. "
    "Leave the password empty and choose Sign in to continue there."
)


@dataclass(frozen=True)
class ProviderSettings:
    id: int
    company_id: int
    company_path: str
    company_name: str
    issuer: str
    client_id: str
    client_secret: str
    domains: tuple[str, ...]
    create_on_first_sign_in: bool
    sso_only_for_staff: bool
    trust_provider_mfa: bool


_COLUMNS = (
    SsoConfig.id,
    SsoConfig.company,
    SsoConfig.company.path.as_alias("company_path"),
    SsoConfig.company.name.as_alias("company_name"),
    SsoConfig.issuer,
    SsoConfig.client_id,
    SsoConfig.client_secret,
    SsoConfig.create_on_first_sign_in,
    SsoConfig.sso_only_for_staff,
    SsoConfig.trust_provider_mfa,
)


async def _settings(row: dict[str, Any] | None) -> ProviderSettings | None:
    if row is None:
        return None
    domains = await SsoDomain.select(SsoDomain.domain).where(SsoDomain.config == row["id"]).order_by(SsoDomain.domain)
    return ProviderSettings(
        id=row["id"],
        company_id=row["company"],
        company_path=row["company_path"],
        company_name=row["company_name"],
        issuer=row["issuer"],
        client_id=row["client_id"],
        client_secret=row["client_secret"],
        domains=tuple(d["domain"] for d in domains),
        create_on_first_sign_in=row["create_on_first_sign_in"],
        sso_only_for_staff=row["sso_only_for_staff"],
        trust_provider_mfa=row["trust_provider_mfa"],
    )


def domain_of(email: str) -> str:
    return email.strip().rpartition("@")[2].strip().lower().rstrip(".")


async def for_email(email: str) -> ProviderSettings | None:
    """The provider an address signs in at, by its domain; None: it signs in with a password."""
    domain = domain_of(email)
    if "@" not in email or not domain:
        return None
    row = await SsoDomain.select(SsoDomain.config).where(SsoDomain.domain == domain).first()
    if row is None:
        return None
    return await by_id(row["config"])


async def by_id(config_id: int) -> ProviderSettings | None:
    return await _settings(await SsoConfig.select(*_COLUMNS).where(SsoConfig.id == config_id).first())


async def for_company(company_id: int) -> ProviderSettings | None:
    return await _settings(await SsoConfig.select(*_COLUMNS).where(SsoConfig.company == company_id).first())


def _ancestors(path: str) -> list[int]:
    return [int(part) for part in path.strip("/").split("/") if part]


async def staff_sso_only(company_path: str, company_kind: str) -> str | None:
    """The name of the partner whose staff (the company at `company_path` or one
    above it, when it is not a customer) may sign in only through its provider."""
    if company_kind == CompanyKind.CUSTOMER:
        return None
    row = (
        await SsoConfig.select(SsoConfig.company.name.as_alias("name"))
        .where(SsoConfig.company.is_in(_ancestors(company_path)) & (SsoConfig.sso_only_for_staff == True))  # noqa: E712
        .first()
    )
    return row["name"] if row else None


async def staff_refusal(company_path: str, company_kind: str) -> str | None:
    """What a password sign-in (or a new password) of such staff is told, or None."""
    name = await staff_sso_only(company_path, company_kind)
    return STAFF_USE_SSO.format(company=name) if name else None


async def reset_refusal(email: str) -> str | None:
    """What "Forgot password?" says for an address of a domain whose partner lets
    its staff in only through its provider; None: a link may be sent."""
    config = await for_email(email)
    if config is None or not config.sso_only_for_staff:
        return None
    return RESET_USE_SSO.format(company=config.company_name)


def parse_domains(text: str) -> list[str]:
    found = []
    for raw in re.split(r"[\s,;]+", text.lower()):
        domain = raw.strip().lstrip("@").rstrip(".")
        if not domain:
            continue
        if not _DOMAIN.fullmatch(domain):
            raise ValidationFailed({"domains": f"“{domain[:100]}” is not an e-mail domain, such as example.com."})
        if domain in PUBLIC_MAIL_DOMAINS:
            raise ValidationFailed({"domains": f"{domain} is a public mail service: anyone can have an address there."})
        if domain not in found:
            found.append(domain)
    if not found:
        raise ValidationFailed({"domains": "Enter at least one e-mail domain, such as example.com."})
    if len(found) > MAX_DOMAINS:
        raise ValidationFailed({"domains": f"Enter at most {MAX_DOMAINS} domains."})
    return found


def _may_change(actor: Actor) -> None:
    require_partner_manager(actor)
    require(actor, Capability.SSO)


async def for_actor(actor: Actor) -> ProviderSettings | None:
    require_partner_manager(actor)
    return await for_company(actor.company_id)


async def save(
    actor: Actor,
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    domains: str,
    create_on_first_sign_in: bool,
    sso_only_for_staff: bool,
    trust_provider_mfa: bool,
    now: datetime,
    allow_private: bool,
) -> ProviderSettings:
    """Set the partner manager's own company's provider. An empty secret keeps the
    one saved (the page never shows it back)."""
    _may_change(actor)
    errors: dict[str, str] = {}
    try:
        issuer = check_issuer(issuer, allow_private=allow_private)
    except ValidationFailed as invalid:
        errors.update(invalid.errors)
    client_id = client_id.strip()
    if not client_id or len(client_id) > 300:
        errors["client_id"] = "Enter the client (application) id the provider gave, at most 300 characters."
    client_secret = client_secret.strip()
    if len(client_secret) > 2000:
        errors["client_secret"] = "The client secret is longer than 2,000 characters."
    try:
        chosen = parse_domains(domains)
    except ValidationFailed as invalid:
        errors.update(invalid.errors)
        chosen = []
    existing = await for_company(actor.company_id)
    if not client_secret and existing is None:
        errors["client_secret"] = "Enter the client secret the provider gave."
    if errors:
        raise ValidationFailed(errors)
    try:
        async with db.write_transaction():
            taken = await SsoDomain.select(SsoDomain.domain).where(
                SsoDomain.domain.is_in(chosen) & (SsoDomain.config.company != actor.company_id)
            )
            if taken:
                names = ", ".join(sorted(row["domain"] for row in taken))
                raise ValidationFailed({"domains": f"Another partner signs in with {names} already."})
            values: dict[Column | str, Any] = {
                SsoConfig.issuer: issuer,
                SsoConfig.client_id: client_id,
                SsoConfig.create_on_first_sign_in: create_on_first_sign_in,
                SsoConfig.sso_only_for_staff: sso_only_for_staff,
                SsoConfig.trust_provider_mfa: trust_provider_mfa,
                SsoConfig.updated_at: now,
                SsoConfig.updated_by: actor.user_id,
            }
            if client_secret:
                values[SsoConfig.client_secret] = client_secret
            if existing:
                await SsoConfig.update(values).where(SsoConfig.id == existing.id)
                config_id = existing.id
                await SsoDomain.delete().where(SsoDomain.config == config_id)
            else:
                row = SsoConfig(company=actor.company_id, client_secret=client_secret)
                for column, value in values.items():
                    assert isinstance(column, Column)
                    setattr(row, column._meta.name, value)
                config_id = (await SsoConfig.insert(row).returning(SsoConfig.id))[0]["id"]
            await SsoDomain.insert(*[SsoDomain(config=config_id, domain=d) for d in chosen])
            await audit.record(
                actor,
                "sso.save",
                actor.company_id,
                now,
                {
                    "issuer": issuer,
                    "domains": ", ".join(chosen),
                    "create_on_first_sign_in": create_on_first_sign_in,
                    "sso_only_for_staff": sso_only_for_staff,
                    "trust_provider_mfa": trust_provider_mfa,
                    "secret_changed": bool(client_secret),
                },
            )
    except Exception as exc:
        # Two partners saving one domain at once: the unique index lets one in.
        if db.is_unique_violation(exc, "domain"):
            raise ValidationFailed({"domains": "Another partner has just taken one of these domains."}) from None
        raise
    saved = await for_company(actor.company_id)
    assert saved is not None
    return saved


async def remove(actor: Actor, now: datetime) -> bool:
    """Turn single sign-on off: the staff sign in with passwords again."""
    _may_change(actor)
    async with db.write_transaction():
        existing = await for_company(actor.company_id)
        if existing is None:
            return False
        await SsoConfig.delete().where(SsoConfig.id == existing.id)
        await audit.record(actor, "sso.remove", actor.company_id, now, {"issuer": existing.issuer})
    return True
