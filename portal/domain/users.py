"""Managers and learners: adding them, their set-password links.

Signing in and "Forgot password?" live in portal/domain/sign_in.py."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from email_validator import EmailNotValidError, validate_email

from portal import db
from portal.domain import audit, passwords, sessions
from portal.domain.access import ROLE_NAMES, Actor, Capability, get_company, require
from portal.domain.billing import subscriptions as billing_subscriptions
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.licences import allocation
from portal.domain.pages import Page, paginate
from portal.domain.staff import is_staff
from portal.tables import CUSTOMER_ROLES, MANAGER_ROLES, STAFF_ROLES, USER_ROLES, Company, PasswordToken, Role, User

SET_PASSWORD_VALID_FOR = timedelta(hours=72)
ROLE_LABELS = {
    Role.MANAGER: "Manager",
    Role.READ_ONLY: "Read-only manager",
    Role.LEARNER: "Learner",
} | {role: ROLE_NAMES[role] for role in (Role.PARTNER_ADMIN, Role.ACCOUNT_MANAGER, Role.BILLING)}
NAME_MAX = 200
INVITED_AS: dict[str, str] = {
    Role.READ_ONLY: "a read-only manager",
    Role.PARTNER_ADMIN: "a partner admin",
    Role.ACCOUNT_MANAGER: "an account manager",
    Role.BILLING: "billing staff",
}


def normalise_email(email: str) -> str:
    """The address as stored: syntax checked, domain lower-cased. Raises ValueError."""
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return checked.normalized.lower()


# What every way of signing in (password, single sign-on) reads of the user it signs in.
SIGN_IN_COLUMNS = (
    User.id,
    User.email,
    User.company,
    User.company.kind.as_alias("company_kind"),
    User.company.path.as_alias("company_path"),
    User.role,
    User.active,
    User.session_generation,
)


def token_hash(token: str) -> str:
    """Only this is stored of a set-password token."""
    return hashlib.sha256(token.encode()).hexdigest()


def roles_for(actor: Actor, company: dict[str, Any]) -> list[str]:
    """Who the actor may add to `company`: learners and read-only managers belong
    to customers (read-only managers within the credits bought), and only partner
    managers add managers. A partner's own staff are added by its admins (anyone
    else: PermissionDenied)."""
    if is_staff(company):
        require(actor, Capability.STAFF)
        return list(STAFF_ROLES)
    roles: list[str] = [Role.LEARNER, Role.READ_ONLY]
    if actor.is_partner_manager:
        roles.append(Role.MANAGER)
    return roles


async def holds_read_only_credit(user_id: int, company_id: int) -> bool:
    """Whether a read-only manager is within the credits the company holds now:
    after a renewal with fewer credits, or a lapse, the oldest keep access.
    Credits are a customer's (seed 000): a partner's read-only staff need none."""
    company = await Company.select(Company.kind).where(Company.id == company_id).first()
    if company is not None and is_staff(company):
        return True
    allowance = await billing_subscriptions.read_only_allowance(company_id)
    if allowance == 0:
        return False
    older = await User.count().where(
        (User.company == company_id) & (User.role == Role.READ_ONLY) & (User.active == True) & (User.id < user_id)  # noqa: E712
    )
    return cast("bool", older < allowance)


async def _check_read_only_credit(company: dict[str, Any]) -> None:
    """Under the company's lock, so two at once cannot both take the last credit."""
    await db.for_update(Company.select(Company.id).where(Company.id == company["id"]), of=Company)
    allowance = await billing_subscriptions.read_only_allowance(company["id"])
    used = await User.count().where(
        (User.company == company["id"]) & (User.role == Role.READ_ONLY) & (User.active == True)  # noqa: E712
    )
    if used >= allowance:
        held = (
            f"{allowance} read-only user credit{'s' if allowance != 1 else ''}, all in use"
            if allowance
            else "no read-only user credits"
        )
        raise ValidationFailed({"role": f"{company['name']} has {held}. Add read-only users under Billing first."})


def check_new_user(
    actor: Actor, company: dict[str, Any], email: str, name: str, role: str, *, email_checked: bool = False
) -> tuple[str, str, dict[str, str]]:
    """Who may add whom, and the form's checks that need no database: the
    address and name as stored, and what is wrong with them (field: message).
    Whether the address is taken is the caller's to ask (`taken_email`), in
    whichever statement inserts the user. `email_checked`: the caller already
    has the address as `normalise_email` returns it (checking it costs more
    than the rest of these checks)."""
    require(actor, Capability.STAFF if is_staff(company) else Capability.CUSTOMERS)
    if role not in USER_ROLES:
        raise ValidationFailed({"role": "Choose manager, read-only manager or learner."})
    if is_staff(company) and role == Role.LEARNER:
        raise ValidationFailed({"role": "Learners belong to customer companies."})
    if is_staff(company) and role not in STAFF_ROLES:
        raise ValidationFailed({"role": "Choose partner admin, account manager, billing or read-only."})
    if not is_staff(company) and role not in CUSTOMER_ROLES:
        raise ValidationFailed({"role": "Choose manager, read-only manager or learner."})
    if role == Role.MANAGER and Role.MANAGER not in roles_for(actor, company):
        raise PermissionDenied("Customer managers add learners; ask your partner to add a manager.")

    errors: dict[str, str] = {}
    name = " ".join(name.split())
    if not name:
        errors["name"] = "Enter the person's name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Use at most {NAME_MAX} characters."
    if not email_checked:
        try:
            email = normalise_email(email)
        except ValueError as exc:
            errors["email"] = str(exc) if email.strip() else "Enter an e-mail address."
    return email, name, errors


def taken_email(email: str) -> str:
    """What the form says of an address another user already has (addresses are unique across the portal)."""
    return f"{email} already has an account."


async def create_user(
    actor: Actor, company_id: int, email: str, name: str, role: str, now: datetime
) -> tuple[dict[str, Any], str | None]:
    """Add a manager or a learner. A new manager gets a one-time set-password
    token, returned once to whoever created them and e-mailed to the new manager
    (an outbox row of the same transaction); nobody picks another's password."""
    company = await get_company(actor, company_id)
    email, name, errors = check_new_user(actor, company, email, name, role)
    if "email" not in errors and await User.exists().where(User.email == email):
        errors["email"] = taken_email(email)
    if errors:
        raise ValidationFailed(errors)

    token = secrets.token_urlsafe(32) if role in MANAGER_ROLES else None
    try:
        async with db.write_transaction():
            if role == Role.READ_ONLY and not is_staff(company):
                await _check_read_only_credit(company)
            user = (await User.insert(User(company=company["id"], email=email, name=name, role=role, created_at=now)))[
                0
            ]
            if token:
                await PasswordToken.insert(
                    PasswordToken(
                        user=user["id"],
                        token_hash=token_hash(token),
                        expires_at=now + SET_PASSWORD_VALID_FOR,
                        created_by=actor.user_id,
                    )
                )
                await _queue_invitation(actor, company, email, name, role, token, now)
            await audit.record(actor, f"user.create_{role}", company["id"], now, {"email": email})
    except Exception as exc:
        # Two "Add User" for one address at once both pass the check above; the
        # unique index lets one in, and the other gets the form's answer.
        if db.is_unique_violation(exc, "email"):
            raise ValidationFailed({"email": taken_email(email)}) from None
        raise
    if role == Role.LEARNER:
        await allocation.allocate_new_learner(actor, company["id"], user["id"], now)
    return {"id": user["id"], "email": email, "name": name, "role": role, "company_id": company["id"]}, token


async def _queue_invitation(
    actor: Actor, company: dict[str, Any], email: str, name: str, role: str, token: str, now: datetime
) -> None:
    hours = int(SET_PASSWORD_VALID_FOR.total_seconds() // 3600)
    as_what = INVITED_AS.get(role, "a manager")
    await queue_kind(
        "invitation",
        None,  # no company: the E-mails page must not show the link to other managers
        [email],
        {
            "name": name,
            "invited_by": actor.name,
            "as_what": as_what,
            "company_name": company["name"],
            "hours": hours,
            "set_password_path": f"/set-password/{token}",
        },
        now,
        dedupe=f"invitation:{token_hash(token)}",
    )


class UserRow(TypedDict):
    """A user on a company's Users list."""

    id: int
    name: str
    email: str
    role: str
    active: bool
    licence_ends_at: datetime | None


async def list_users(actor: Actor, company_id: int, q: str, page: int) -> Page[UserRow]:
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


LINK_GONE = "This link has expired or was already used. Ask for a new one with “Forgot password?” on the sign-in page."


async def token_owner(token: str, now: datetime) -> dict[str, Any]:
    """Whose link this is, while it works: unused, unexpired, and the newest
    link its owner was sent (sending a link voids every one sent before, so only
    the e-mail read last can set the password). Signing in voids them all
    (portal/domain/sign_in.py)."""
    row = (
        await PasswordToken.select(
            PasswordToken.id, PasswordToken.user.id.as_alias("user_id"), PasswordToken.user.email.as_alias("email")
        )
        .where(
            (PasswordToken.token_hash == token_hash(token))
            & PasswordToken.used_at.is_null()
            & (PasswordToken.expires_at > now)
        )
        .first()
    )
    if row is None or await PasswordToken.exists().where(
        (PasswordToken.user == row["user_id"]) & (PasswordToken.id > row["id"])
    ):
        raise NotFound(LINK_GONE)
    return row


async def set_password(token: str, password: str, confirm: str, now: datetime) -> dict[str, Any]:
    """Set the password of the token's owner; the token, and any other unused
    link of theirs, then works no more, and every session they had open ends
    (one that a thief copied too): each signs in again with the new password."""
    owner = await token_owner(token, now)
    problem = passwords.password_problem(password, confirm, owner["email"])
    if problem:
        raise ValidationFailed({"password": problem})
    new_hash = await passwords.hash_off_loop(password)
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
        await PasswordToken.update({PasswordToken.used_at: now}).where(
            (PasswordToken.user == owner["user_id"]) & PasswordToken.used_at.is_null()
        )
        await User.update({User.password_hash: new_hash}).where(User.id == owner["user_id"])
        await sessions.end_others(owner["user_id"], None, now)
    return owner


WRONG_CURRENT_PASSWORD = "That is not your current password."


async def change_password(
    actor: Actor, current: str, password: str, confirm: str, now: datetime, keep_session: int | None
) -> int:
    """Profile's "Change password": the current password, then a new one that
    meets the rule. Every other session of the user ends (one a thief holds
    too); the session that changed it carries on with the returned generation.
    Unused set-password links are voided: the user just chose a password."""
    stored = await User.select(User.password_hash).where(User.id == actor.user_id).first()
    if not await passwords.verify_off_loop(stored["password_hash"] if stored else None, current):
        raise ValidationFailed({"current": WRONG_CURRENT_PASSWORD})
    problem = passwords.password_problem(password, confirm, actor.email)
    if problem:
        raise ValidationFailed({"password": problem})
    new_hash = await passwords.hash_off_loop(password)
    async with db.write_transaction():
        await User.update({User.password_hash: new_hash}).where(User.id == actor.user_id)
        await PasswordToken.update({PasswordToken.used_at: now}).where(
            (PasswordToken.user == actor.user_id) & PasswordToken.used_at.is_null()
        )
        generation = await sessions.end_others(actor.user_id, keep_session, now)
        await audit.record(actor, "user.change_password", actor.company_id, now)
    return generation
