"""A customer's SCIM tokens: created by its managers (or its partner's, in
manage mode), shown once, kept as a sha256, revocable, audited."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, get_company
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables.scim import ScimToken

TOKEN_PREFIX = "scim_"
NAME_MAX = 100
# "Last used" is a hint for whoever revokes, not a log: written at most once a minute per token.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def manageable_company(actor: Actor, company_id: int) -> dict[str, Any]:
    """The customer whose tokens the actor may see and change: their own company
    as one of its managers, or the customer a partner manager is managing."""
    company = await get_company(actor, company_id)
    if company["kind"] != "customer" or company["id"] != actor.acting_company_id:
        raise NotFound("No such company.")
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change SCIM provisioning.")
    return company


def may_manage(actor: Actor, company: dict[str, Any]) -> bool:
    """Whether the company page offers its SCIM provisioning to the actor."""
    return company["kind"] == "customer" and company["id"] == actor.acting_company_id and not actor.read_only


async def create_token(actor: Actor, company_id: int, name: str, now: datetime) -> tuple[dict[str, Any], str]:
    """A new token for the company; the token itself is returned once, only its hash is kept."""
    company = await manageable_company(actor, company_id)
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed({"name": "Name the token after what uses it, e.g. “Entra ID”."})
    if len(name) > NAME_MAX:
        raise ValidationFailed({"name": f"Use at most {NAME_MAX} characters."})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = (
        await ScimToken.insert(
            ScimToken(
                company=company["id"],
                name=name,
                prefix=token[:10],
                token_hash=_hash(token),
                created_by=actor.user_id,
                created_at=now,
            )
        ).returning(ScimToken.id, ScimToken.name, ScimToken.prefix)
    )[0]
    await audit.record(actor, "scim_token.create", company["id"], now, {"name": name, "prefix": row["prefix"]})
    return row, token


async def list_tokens(actor: Actor, company_id: int) -> list[dict[str, Any]]:
    company = await manageable_company(actor, company_id)
    return (
        await ScimToken.select(
            ScimToken.id,
            ScimToken.name,
            ScimToken.prefix,
            ScimToken.created_at,
            ScimToken.last_used_at,
            ScimToken.revoked_at,
            ScimToken.created_by.name.as_alias("created_by_name"),
        )
        .where(ScimToken.company == company["id"])
        .order_by(ScimToken.id, ascending=False)
    )


async def revoke_token(actor: Actor, company_id: int, token_id: int, now: datetime) -> dict[str, Any]:
    """Revoke: the next request with the token is refused. Revoking twice changes nothing."""
    company = await manageable_company(actor, company_id)
    row = (
        await ScimToken.select(ScimToken.id, ScimToken.name, ScimToken.revoked_at)
        .where((ScimToken.id == token_id) & (ScimToken.company == company["id"]))
        .first()
    )
    if row is None:
        raise NotFound("No such token.")
    revoked = (
        await ScimToken.update({ScimToken.revoked_at: now})
        .where((ScimToken.id == token_id) & ScimToken.revoked_at.is_null())
        .returning(ScimToken.id)
    )
    if revoked:
        await audit.record(actor, "scim_token.revoke", company["id"], now, {"name": row["name"]})
    return row


async def token_actor(token: str, now: datetime) -> Actor | None:
    """The actor a live token acts as: a manager of its customer company only,
    in the name of whoever created the token (so changes are audited to them)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    # Every SCIM request asks this first: one hand-written join, not the ORM's
    # (whose building of a five-column join cost more than the query).
    rows = await ScimToken.raw(
        "SELECT t.id, t.last_used_at, u.id AS user_id, u.name AS user_name, u.email AS user_email, "
        "c.id AS company_id, c.name AS company_name, c.kind AS company_kind, c.path AS company_path "
        "FROM scim_token AS t JOIN portal_user AS u ON u.id = t.created_by JOIN company AS c ON c.id = t.company "
        "WHERE t.token_hash = {} AND t.revoked_at IS NULL",
        _hash(token),
    )
    row = rows[0] if rows else None
    if row is None or row["company_kind"] != "customer":
        return None
    last_used = db.as_datetime(row["last_used_at"])
    if last_used is None or last_used <= now - LAST_USED_GRANULARITY:
        await ScimToken.update({ScimToken.last_used_at: now}).where(ScimToken.id == row["id"])
    return Actor(
        user_id=row["user_id"],
        name=row["user_name"],
        email=row["user_email"],
        company_id=row["company_id"],
        company_name=row["company_name"],
        company_kind=row["company_kind"],
        company_path=row["company_path"],
    )
