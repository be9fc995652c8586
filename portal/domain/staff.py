"""A partner's own users, its staff, and their roles (what each role may do is
portal/domain/access.py's ROLE_CAPABILITIES)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, get_company, get_user, require
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import STAFF_ROLES, Company, CompanyKind, Role, User


def is_staff(company: dict[str, Any]) -> bool:
    """A partner's or sub-partner's users are its staff, with STAFF_ROLES."""
    return cast("bool", company["kind"] != CompanyKind.CUSTOMER)


LAST_ADMIN = "{company} needs at least one partner admin: make someone else one first."


async def check_keeps_an_admin(company: dict[str, Any], user: dict[str, Any]) -> None:
    """A partner or sub-partner keeps one active partner admin, so someone can
    still manage its staff and settings. Call under the company's lock, with the
    user about to lose the role (or be deactivated)."""
    if user["role"] != Role.PARTNER_ADMIN or not user["active"]:
        return
    others = await User.count().where(
        (User.company == company["id"])
        & (User.role == Role.PARTNER_ADMIN)
        & (User.active == True)  # noqa: E712
        & (User.id != user["id"])
    )
    if not others:
        raise ValidationFailed({"role": LAST_ADMIN.format(company=company["name"])})


async def change_role(actor: Actor, user_id: int, role: str, now: datetime) -> dict[str, Any]:
    """A partner admin gives one of its (or a sub-partner's) staff another role.
    Their open sessions keep going: the role is read on every request."""
    require(actor, Capability.STAFF)
    user = await get_user(actor, user_id)
    company = await get_company(actor, user["company"])
    if not is_staff(company) or user["role"] not in STAFF_ROLES:
        raise ValidationFailed({"role": "Only a partner's staff have these roles."})
    if role not in STAFF_ROLES:
        raise ValidationFailed({"role": "Choose partner admin, account manager, billing or read-only."})
    if role == user["role"]:
        return {**user, "changed": False}
    async with db.write_transaction():
        # Two admins demoting each other at once: the second waits and finds it would leave none.
        await db.for_update(Company.select(Company.id).where(Company.id == company["id"]), of=Company)
        if actor.role in STAFF_ROLES:
            # The actor was read at the start of the request; another admin may have just demoted them.
            mine = await User.select(User.role).where(User.id == actor.user_id).first()
            if mine is None or mine["role"] != Role.PARTNER_ADMIN:
                raise PermissionDenied("You are no longer a partner admin: ask one to change roles.")
        current = await User.select(User.id, User.role, User.active).where(User.id == user["id"]).first()
        if current is None:
            raise NotFound("No such user.")
        if current["role"] == role:
            return {**user, "role": role, "changed": False}
        await check_keeps_an_admin(company, current)
        await User.update({User.role: role}).where(User.id == user["id"])
        await audit.record(
            actor, "user.change_role", company["id"], now, {"user": user["email"], "role": role, "was": current["role"]}
        )
    return {**user, "role": role, "was": current["role"], "changed": True}
