"""The first partner of a production install: a top partner company and its
first manager, made by an operator (`portal create-partner`), not through a
page (nobody is signed in yet to make it). The manager gets the same one-time
set-password link as any new manager (portal/domain/users.py), printed for the
operator to hand over."""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.columns.combination import WhereRaw

from portal import db
from portal.domain import audit
from portal.domain.companies import NAME_MAX, insert_company
from portal.domain.errors import ValidationFailed
from portal.domain.users import SET_PASSWORD_VALID_FOR, normalise_email, token_hash
from portal.tables import Company, CompanyKind, PasswordToken, Role, User


@dataclass(frozen=True)
class FirstPartner:
    company: dict[str, Any]
    manager: dict[str, Any]
    token: str  # the set-password token, shown once
    expires_at: datetime


def _clean_name(value: str, what: str, errors: dict[str, str], field: str) -> str:
    name = " ".join(value.split())
    if not name:
        errors[field] = f"Give the {what}."
    elif len(name) > NAME_MAX:
        errors[field] = f"Use at most {NAME_MAX} characters for the {what}."
    elif any(unicodedata.category(ch) == "Cc" for ch in name):
        errors[field] = f"The {what} has a control character in it."
    return name


async def create_first_partner(name: str, manager_email: str, manager_name: str | None, now: datetime) -> FirstPartner:
    """A top partner (no parent) and its manager, all or nothing, audited.
    Top partners' names are unique, case-insensitively, like any siblings'."""
    errors: dict[str, str] = {}
    name = _clean_name(name, "partner's name", errors, "name")
    try:
        email = normalise_email(manager_email)
    except ValueError as exc:
        errors["manager_email"] = str(exc) if manager_email.strip() else "Give the manager's e-mail address."
        email = ""
    manager = _clean_name(
        manager_name or manager_email.strip().split("@")[0] or "-", "manager's name", errors, "manager_name"
    )
    token = secrets.token_urlsafe(32)
    expires_at = now + SET_PASSWORD_VALID_FOR
    async with db.write_transaction():
        same_name = WhereRaw("lower(name) = {}", name.lower())
        if "name" not in errors and await Company.exists().where(Company.parent.is_null() & same_name):
            errors["name"] = f"There is already a top partner named {name}."
        if email and await User.exists().where(User.email == email):
            errors["manager_email"] = f"{email} already has an account."
        if errors:
            raise ValidationFailed(errors)
        company = await insert_company(name, CompanyKind.PARTNER, None, now)
        user = (
            await User.insert(
                User(company=company["id"], email=email, name=manager, role=Role.PARTNER_ADMIN, created_at=now)
            )
        )[0]
        await PasswordToken.insert(PasswordToken(user=user["id"], token_hash=token_hash(token), expires_at=expires_at))
        await audit.record(
            None, "partner.create", company["id"], now, {"name": name, "manager_email": email, "by": "command line"}
        )
    return FirstPartner(
        company=company,
        manager={"id": user["id"], "email": email, "name": manager},
        token=token,
        expires_at=expires_at,
    )
