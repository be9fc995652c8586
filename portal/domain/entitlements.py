"""The training platform asks whether an e-mail is licensed, with a partner's API key."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from portal.domain import audit
from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.licences.status import licence_status
from portal.domain.users import normalise_email
from portal.tables import Allocation, ApiKey, User

KEY_PREFIX = "lp_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# What a key may do (/api/v1; the entitlements question needs "read").
SCOPES = {
    "read": "Read companies, users, orders, batches and allocations",
    "orders": "Request, assign and decline orders",
    "billing": "Read invoices and payments",
}


async def create_key(
    actor: Actor, name: str, now: datetime, scopes: tuple[str, ...] | list[str] = ("read",)
) -> tuple[dict[str, Any], str]:
    """A new key for the actor's own partner company; the key itself is returned
    once and only its hash is kept."""
    require_partner_manager(actor)
    require(actor, Capability.API_KEYS)
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot make API keys.")
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed({"name": "Name the key after what uses it, e.g. “Training platform”."})
    if len(name) > 100:
        raise ValidationFailed({"name": "Use at most 100 characters."})
    chosen = [scope for scope in SCOPES if scope in set(scopes)]
    if not chosen:
        raise ValidationFailed({"scopes": "Choose what the key may do."})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = (
        await ApiKey.insert(
            ApiKey(
                company=actor.company_id,
                name=name,
                prefix=key[:10],
                key_hash=_hash(key),
                created_by=actor.user_id,
                created_at=now,
                scopes=",".join(chosen),
            )
        ).returning(ApiKey.id, ApiKey.name, ApiKey.prefix, ApiKey.scopes)
    )[0]
    await audit.record(
        actor, "api_key.create", actor.company_id, now, {"name": name, "prefix": row["prefix"], "scopes": chosen}
    )
    return row, key


async def list_keys(actor: Actor) -> list[dict[str, Any]]:
    require_partner_manager(actor)
    return (
        await ApiKey.select(
            ApiKey.id,
            ApiKey.name,
            ApiKey.prefix,
            ApiKey.created_at,
            ApiKey.revoked_at,
            ApiKey.scopes,
            ApiKey.created_by.name.as_alias("created_by_name"),
        )
        .where(ApiKey.company == actor.company_id)
        .order_by(ApiKey.id, ascending=False)
    )


async def revoke_key(actor: Actor, key_id: int, now: datetime) -> None:
    require_partner_manager(actor)
    require(actor, Capability.API_KEYS)
    revoked = (
        await ApiKey.update({ApiKey.revoked_at: now})
        .where((ApiKey.id == key_id) & (ApiKey.company == actor.company_id) & ApiKey.revoked_at.is_null())
        .returning(ApiKey.id)
    )
    if not revoked and not await ApiKey.exists().where((ApiKey.id == key_id) & (ApiKey.company == actor.company_id)):
        raise NotFound("No such key.")
    await audit.record(actor, "api_key.revoke", actor.company_id, now, {"key": key_id})


async def key_owner(key: str) -> dict[str, Any] | None:
    """The partner company behind a live key (and the key's id, name, scopes and
    maker), or None."""
    return (
        await ApiKey.select(
            ApiKey.company.id.as_alias("id"),
            ApiKey.company.path.as_alias("path"),
            ApiKey.company.name.as_alias("company_name"),
            ApiKey.company.kind.as_alias("kind"),
            ApiKey.id.as_alias("key_id"),
            ApiKey.name,
            ApiKey.scopes,
            ApiKey.created_by,
        )
        .where((ApiKey.key_hash == _hash(key)) & ApiKey.revoked_at.is_null())
        .first()
    )


async def entitlement(partner: dict[str, Any], email: str, now: datetime) -> dict[str, Any]:
    """Status of the user with this e-mail, if they are under the partner's wing.
    Anyone else is NotFound, exactly like an unknown address."""
    try:
        email = normalise_email(email)
    except ValueError:
        raise NotFound("No such user.") from None
    user = (
        await User.select(
            User.id,
            User.email,
            User.active,
            User.licence_ends_at,
            User.company.path.as_alias("path"),
            User.company.name.as_alias("company"),
        )
        .where(User.email == email)
        .first()
    )
    if user is None or not user["path"].startswith(partner["path"]):
        raise NotFound("No such user.")
    seat = (
        await Allocation.select(Allocation.batch._.product._.name.as_alias("product"))
        .where((Allocation.user == user["id"]) & Allocation.released_at.is_null())
        .order_by(Allocation.ends_at, ascending=False)
        .first()
    )
    status = licence_status(user["licence_ends_at"], now) if user["active"] else "deactivated"
    return {
        "email": user["email"],
        "company": user["company"],
        "status": status,
        "licensed": status in ("active", "expiring"),
        "product": seat["product"] if seat else None,
        "ends_at": user["licence_ends_at"],
    }
