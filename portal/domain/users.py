"""Managers and learners: adding them, their set-password links, signing in."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email

from portal import db
from portal.domain import audit, licences, passwords
from portal.domain.access import Actor, get_company
from portal.domain.errors import NotFound, PermissionDenied, SignInRefused, ValidationFailed
from portal.domain.pages import Page, paginate
from portal.tables import PasswordToken, User

SET_PASSWORD_VALID_FOR = timedelta(hours=72)
MAX_FAILED_SIGN_INS = 5
LOCKOUT = timedelta(minutes=15)
NAME_MAX = 200
WRONG_CREDENTIALS = "That e-mail and password do not match a portal manager."


def normalise_email(email: str) -> str:
    """The address as stored: syntax checked, domain lower-cased. Raises ValueError."""
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return checked.normalized.lower()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def roles_for(actor: Actor, company: dict) -> list[str]:
    """Who the actor may add to `company`: learners belong to customers, and
    only partner managers add managers."""
    roles = ["learner"] if company["kind"] == "customer" else []
    if actor.is_partner_manager:
        roles.append("manager")
    return roles


async def create_user(
    actor: Actor, company_id: int, email: str, name: str, role: str, now: datetime
) -> tuple[dict, str | None]:
    """Add a manager or a learner. A new manager gets a one-time set-password
    token, returned once to whoever created them; nobody picks another's password."""
    company = await get_company(actor, company_id)
    if role not in ("manager", "learner"):
        raise ValidationFailed({"role": "Choose manager or learner."})
    if role == "learner" and company["kind"] != "customer":
        raise ValidationFailed({"role": "Learners belong to customer companies."})
    if role == "manager" and "manager" not in roles_for(actor, company):
        raise PermissionDenied("Customer managers add learners; ask your partner to add a manager.")

    errors: dict[str, str] = {}
    name = " ".join(name.split())
    if not name:
        errors["name"] = "Enter the person's name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Use at most {NAME_MAX} characters."
    try:
        email = normalise_email(email)
    except ValueError as exc:
        errors["email"] = str(exc) if email.strip() else "Enter an e-mail address."
    if "email" not in errors and await User.exists().where(User.email == email):
        errors["email"] = f"{email} already has an account."
    if errors:
        raise ValidationFailed(errors)

    token = secrets.token_urlsafe(32) if role == "manager" else None
    async with db.write_transaction():
        user = (await User.insert(User(company=company["id"], email=email, name=name, role=role, created_at=now)))[0]
        if token:
            await PasswordToken.insert(
                PasswordToken(
                    user=user["id"],
                    token_hash=_token_hash(token),
                    expires_at=now + SET_PASSWORD_VALID_FOR,
                    created_by=actor.user_id,
                )
            )
        await audit.record(actor, f"user.create_{role}", company["id"], now, {"email": email})
    if role == "learner":
        await licences.allocate_new_learner(actor, company["id"], user["id"], now)
    return {"id": user["id"], "email": email, "name": name, "role": role, "company_id": company["id"]}, token


async def list_users(actor: Actor, company_id: int, q: str, page: int) -> Page:
    company = await get_company(actor, company_id)
    where = User.company == company["id"]
    if q:
        where &= db.contains("portal_user.name", q) | db.contains("portal_user.email", q)
    select = (
        User.select(User.id, User.name, User.email, User.role, User.active, User.licence_ends_at)
        .where(where)
        .order_by(User.name)
        .order_by(User.id)
    )
    return await paginate(select, User.count().where(where), page)


async def token_owner(token: str, now: datetime) -> dict:
    row = (
        await PasswordToken.select(
            PasswordToken.id, PasswordToken.user.id.as_alias("user_id"), PasswordToken.user.email.as_alias("email")
        )
        .where(
            (PasswordToken.token_hash == _token_hash(token))
            & PasswordToken.used_at.is_null()
            & (PasswordToken.expires_at > now)
        )
        .first()
    )
    if row is None:
        raise NotFound("This link has expired or was already used. Ask whoever added you for a new one.")
    return row


async def set_password(token: str, password: str, confirm: str, now: datetime) -> dict:
    problem = passwords.password_problem(password, confirm)
    if problem:
        raise ValidationFailed({"password": problem})
    async with db.write_transaction():
        owner = await token_owner(token, now)
        # Used once: the update only wins while the token is still unused.
        used = (
            await PasswordToken.update({PasswordToken.used_at: now})
            .where((PasswordToken.id == owner["id"]) & PasswordToken.used_at.is_null())
            .returning(PasswordToken.id)
        )
        if not used:
            raise NotFound("This link was already used.")
        await User.update(
            {User.password_hash: passwords.hash_password(password), User.failed_sign_ins: 0, User.locked_until: None}
        ).where(User.id == owner["user_id"])
    return owner


async def authenticate(email: str, password: str, now: datetime) -> dict:
    """The manager behind these credentials, or SignInRefused. After
    MAX_FAILED_SIGN_INS wrong passwords in a row the account is refused for LOCKOUT."""
    try:
        email = normalise_email(email)
    except ValueError:
        raise SignInRefused(WRONG_CREDENTIALS) from None
    user = (
        await User.select(
            User.id,
            User.company,
            User.company.kind.as_alias("company_kind"),
            User.role,
            User.active,
            User.password_hash,
            User.locked_until,
        )
        .where(User.email == email)
        .first()
    )
    if user and user["locked_until"] and user["locked_until"] > now:
        minutes = max(1, int((user["locked_until"] - now).total_seconds() // 60) + 1)
        raise SignInRefused(
            f"Too many failed sign-ins for this account. Try again in {minutes} minutes, or set a new password."
        )
    ok = passwords.verify_password(user["password_hash"] if user else None, password)
    if user is None:
        raise SignInRefused(WRONG_CREDENTIALS)
    if not ok:
        await _count_failure(user["id"], now)
        raise SignInRefused(WRONG_CREDENTIALS)
    if user["role"] != "manager":
        raise SignInRefused("Learners sign in to the training platform, not to this portal.")
    if not user["active"]:
        raise SignInRefused("This account has been deactivated.")
    await User.update({User.failed_sign_ins: 0, User.locked_until: None}).where(User.id == user["id"])
    return user


async def _count_failure(user_id: int, now: datetime) -> None:
    async with db.write_transaction():
        rows = (
            await User.update({User.failed_sign_ins: User.failed_sign_ins + 1})
            .where(User.id == user_id)
            .returning(User.failed_sign_ins)
        )
        if rows and rows[0]["failed_sign_ins"] >= MAX_FAILED_SIGN_INS:
            await User.update({User.failed_sign_ins: 0, User.locked_until: now + LOCKOUT}).where(User.id == user_id)
