"""Who may act on which company: the one rule, and its set-based twin for lists.

A manager acts on their own company and every company below it ("under its
wing"). A customer has nothing below it, so a customer manager acts only on
their own company. Anything outside answers NotFound, never PermissionDenied,
so another tenant's ids reveal nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from piccolo.columns import Column
from piccolo.columns.combination import Where
from piccolo.columns.operators.comparison import Like
from piccolo.querystring import QueryString

from portal import db
from portal.domain import sessions
from portal.domain.errors import NotFound, PermissionDenied
from portal.tables import MANAGER_ROLES, Company, CompanyKind, Role, User


class Capability(StrEnum):
    """What a signed-in user may do; a role is a set of these (ROLE_CAPABILITIES)."""

    SETTINGS = "settings"  # the partner's settings: e-mails, dashboard, retention, sign-in
    API_KEYS = "api_keys"
    SSO = "sso"  # sign-in settings and SCIM tokens
    WEBHOOKS = "webhooks"
    STAFF = "staff"  # the partner's own users and their roles
    CUSTOMERS = "customers"  # add companies and their users, Manage Company
    ORDERS = "orders"
    LICENCES = "licenses"  # allocate, renew, import, auto-renewal
    BULK = "bulk"
    INVOICES = "invoices"  # subscriptions and invoices: buy, change, cancel, reissue, void
    PAYMENTS = "payments"
    REFUNDS = "refunds"
    BILLING_SETTINGS = "billing_settings"
    SEE_LICENCES = "see_licenses"  # the licence and order pages, read


_ACCOUNT = frozenset(
    {
        Capability.CUSTOMERS,
        Capability.ORDERS,
        Capability.LICENCES,
        Capability.BULK,
        Capability.SEE_LICENCES,
    }
)
_BILLING = frozenset({Capability.INVOICES, Capability.PAYMENTS, Capability.REFUNDS, Capability.BILLING_SETTINGS})
# The one table of who may do what. A customer's manager keeps what it had: what
# it may not do as a customer (partner pages) is refused by is_partner_manager.
ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.PARTNER_ADMIN: frozenset(Capability),
    Role.ACCOUNT_MANAGER: _ACCOUNT,
    Role.BILLING: _BILLING,
    Role.READ_ONLY: frozenset({Capability.SEE_LICENCES}),
    Role.MANAGER: frozenset(Capability),
}
ROLE_NAMES: dict[str, str] = {
    Role.PARTNER_ADMIN: "Partner admin",
    Role.ACCOUNT_MANAGER: "Account manager",
    Role.BILLING: "Billing",
    Role.READ_ONLY: "Read-only",
    Role.MANAGER: "Manager",
}


@dataclass(frozen=True)
class Actor:
    """A signed-in manager, and the customer entered with "Manage Company" if any."""

    user_id: int
    name: str
    email: str
    company_id: int
    company_name: str
    company_kind: str
    company_path: str
    managing_id: int | None = None
    managing_name: str | None = None
    # Sees what a manager of its company sees; every change is refused (portal/web/session.py).
    read_only: bool = False
    # The signed-in browser's row (portal/domain/sessions.py); None for a session from before they were listed.
    session_id: int | None = None
    # The user's role (portal/tables.py): partner staff's decides what they may do.
    role: str = Role.MANAGER

    @property
    def is_partner_manager(self) -> bool:
        return self.company_kind != CompanyKind.CUSTOMER

    def may(self, capability: Capability) -> bool:
        if self.read_only:
            return capability == Capability.SEE_LICENCES
        return capability in ROLE_CAPABILITIES.get(self.role, frozenset())

    @property
    def capabilities(self) -> frozenset[Capability]:
        """For templates: `"orders" in actor.capabilities` hides what the role cannot do."""
        return frozenset(c for c in Capability if self.may(c))

    @property
    def acting_company_id(self) -> int:
        """The company whose pages the actor is looking at."""
        return self.managing_id or self.company_id


def may_act_on(actor: Actor, company_path: str) -> bool:
    return company_path.startswith(actor.company_path)


_PATH = re.compile(r"(/[0-9]+)+/")


def under_wing(actor: Actor, path_column: Column = Company.path) -> Where:
    """`may_act_on` as a WHERE clause, for listing many companies at once.

    The prefix is written into the SQL, not bound: a cached prepared statement
    gets a generic plan after a few runs, which cannot know that a partner's
    `LIKE $1` matches every company and picks joins fit for a handful. A path is
    made of our own ids only (checked here), so it is safe as a literal."""
    if not _PATH.fullmatch(actor.company_path):
        raise ValueError(f"not a company path: {actor.company_path!r}")
    return Where(path_column, QueryString(f"'{actor.company_path}%'"), operator=Like)


def require_partner_manager(actor: Actor) -> None:
    if not actor.is_partner_manager:
        raise PermissionDenied("Only partner managers can do this.")


def require(actor: Actor, capability: Capability) -> None:
    """The check before every change a role may not make: PermissionDenied, with
    who can make it instead."""
    if actor.may(capability):
        return
    staff = (Role.PARTNER_ADMIN, Role.ACCOUNT_MANAGER, Role.BILLING)
    can = [ROLE_NAMES[role].lower() for role in staff if capability in ROLE_CAPABILITIES[role]]
    who = " or ".join(f"an {name}" if name[0] in "aeiou" else f"a {name}" for name in can)
    raise PermissionDenied(f"Your role ({ROLE_NAMES.get(actor.role, actor.role).lower()}) cannot do this: ask {who}.")


async def get_company(actor: Actor, company_id: int) -> dict[str, Any]:
    rows = await Company.raw("SELECT * FROM company WHERE id = {}", company_id)  # on every page: no query builder
    if not rows or not may_act_on(actor, rows[0]["path"]):
        raise NotFound("No such company.")
    return cast("dict[str, Any]", rows[0])


async def get_user(actor: Actor, user_id: int) -> dict[str, Any]:
    row = (
        await User.select(
            *User.all_columns(exclude=[User.password_hash]),
            User.company.path.as_alias("company_path"),
            User.company.name.as_alias("company_name"),
        )
        .where(User.id == user_id)
        .first()
    )
    if row is None or not may_act_on(actor, row["company_path"]):
        raise NotFound("No such user.")
    return row


# Every signed-in request asks this, so it is written out: Piccolo's join
# builder costs more than running the query.
_ACTOR_SQL = (
    "SELECT portal_user.id, portal_user.name, portal_user.email, portal_user.role, portal_user.active, "
    "portal_user.session_generation, "
    "company.id AS company_id, company.name AS company_name, company.kind AS company_kind, "
    "company.path AS company_path, managed.name AS managing_name, managed.path AS managing_path, "
    "user_session.id AS session_id, user_session.signed_in_at, user_session.last_seen_at, user_session.ended_at "
    "FROM portal_user JOIN company ON company.id = portal_user.company "
    "LEFT JOIN company AS managed ON managed.id = {} "
    'LEFT JOIN user_session ON user_session.id = {} AND user_session."user" = portal_user.id '
    "WHERE portal_user.id = {}"
)


@dataclass(frozen=True)
class SessionCheck:
    """The signed-in browser's row, checked against the lifetimes at `now`."""

    session_id: int
    now: datetime
    lifetimes: sessions.Lifetimes


async def load_actor(
    user_id: int, managing_id: int | None, session_generation: int | None = None, session: SessionCheck | None = None
) -> Actor | None:
    """Rebuild the actor from what a session holds; None if the user can no longer
    sign in (deactivated, or not a manager), for a session signed in at
    `session_generation`, if the user's sessions were ended since (a new password,
    a new second factor), and for a `session` row, if it was ended or outlived
    its idle or absolute lifetime."""
    rows = await User.raw(_ACTOR_SQL, managing_id, session.session_id if session else None, user_id)
    user = rows[0] if rows else None
    if user is None or not user["active"] or user["role"] not in MANAGER_ROLES:
        return None
    if session_generation is not None and session_generation != user["session_generation"]:
        return None
    if session is not None:
        if user["session_id"] is None:
            return None
        row = {key: db.as_datetime(user[key]) for key in ("signed_in_at", "last_seen_at", "ended_at")}
        if not sessions.still_open(row, session.now, session.lifetimes):
            return None
        last_seen = row["last_seen_at"]
        assert last_seen is not None  # still_open read it
        await sessions.touch(session.session_id, last_seen, session.now)
    actor = Actor(
        user_id=user["id"],
        name=user["name"],
        email=user["email"],
        company_id=user["company_id"],
        company_name=user["company_name"],
        company_kind=user["company_kind"],
        company_path=user["company_path"],
        read_only=user["role"] == Role.READ_ONLY,
        session_id=session.session_id if session else None,
        role=user["role"],
    )
    if user["managing_path"] is None or not may_act_on(actor, user["managing_path"]):
        return actor
    return replace(actor, managing_id=managing_id, managing_name=user["managing_name"])
