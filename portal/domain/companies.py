"""The tenant tree: partner → sub-partners → customers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypedDict

from piccolo.columns.combination import WhereRaw

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, get_company, require, require_partner_manager, under_wing
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.orders import decisions, requests
from portal.domain.pages import Page, paginate
from portal.tables import AuditEntry, Company, CompanyKind

# Which kinds of company may stand below which.
CHILD_KINDS: dict[str, tuple[CompanyKind, ...]] = {
    CompanyKind.PARTNER: (CompanyKind.SUB_PARTNER, CompanyKind.CUSTOMER),
    CompanyKind.SUB_PARTNER: (CompanyKind.SUB_PARTNER, CompanyKind.CUSTOMER),
    CompanyKind.CUSTOMER: (),
}
KIND_LABELS: dict[str, str] = {
    CompanyKind.PARTNER: "Partner",
    CompanyKind.SUB_PARTNER: "Sub-partner",
    CompanyKind.CUSTOMER: "Customer",
}
NAME_MAX = 200
# The one-time token the Create Company form carries (secrets.token_urlsafe).
FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


async def create_company(
    actor: Actor, parent_id: int | None, name: str, kind: str, now: datetime, *, form_token: str = ""
) -> dict[str, Any]:
    """ "Create Company". `form_token` names one submission of the form: a second
    post of it (a double click) answers the company the first one made."""
    return await _create(actor, parent_id, name, kind, now, form_token)


async def onboard_customer(
    actor: Actor,
    parent_id: int | None,
    name: str,
    now: datetime,
    *,
    first_order: int | None = None,
    po_number: str = "",
    trial_seats: int | None = None,
    form_token: str = "",
) -> dict[str, Any]:
    """ "Create Company" for a customer, with its first order or a Free trial, all or nothing."""

    async def first_licences(company: dict[str, Any]) -> None:
        if trial_seats is not None:
            await decisions.start_trial(actor, company["id"], trial_seats, now)
        if first_order is not None:
            await requests.request_order(actor, company["id"], first_order, None, po_number, now)

    return await _create(actor, parent_id, name, CompanyKind.CUSTOMER, now, form_token, first_licences)


async def _create(
    actor: Actor,
    parent_id: int | None,
    name: str,
    kind: str,
    now: datetime,
    form_token: str,
    then: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    require_partner_manager(actor)
    require(actor, Capability.CUSTOMERS)
    name = " ".join(name.split())
    dedupe_key = _submission_key(actor, form_token)
    if dedupe_key and (earlier := await _made_by(actor, dedupe_key, name)):
        return earlier
    try:
        parent = await _check(actor, parent_id, name, kind)
        async with db.write_transaction():
            company = await insert_company(name, kind, parent, now)
            # The audit entry of the creation carries the submission's key, unique:
            # of two posts of one form, the second fails here (or on the name).
            await AuditEntry.insert(
                AuditEntry(
                    at=now,
                    actor=actor.user_id,
                    acting_as=actor.managing_id,
                    company=company["id"],
                    action="company.create",
                    detail={"name": name, "kind": kind},
                    dedupe_key=dedupe_key,
                )
            )
            if then is not None:
                await then(company)
    except Exception as error:
        clash = db.is_unique_violation(error)
        # Outside the transaction, which the failure rolled back: a post of the
        # same form that won the race is committed now, and is the answer.
        if dedupe_key and (clash or isinstance(error, ValidationFailed)):
            earlier = await _made_by(actor, dedupe_key, name)
            if earlier is not None:
                return earlier
        if not clash:
            raise
        raise ValidationFailed({"name": _taken(parent, name)}) from None
    return company


def _taken(parent: dict[str, Any], name: str) -> str:
    return f"{parent['name']} already has a company named {name}."


async def _check(actor: Actor, parent_id: int | None, name: str, kind: str) -> dict[str, Any]:
    """The form's rules; returns the parent. The sibling-name rule is checked here
    for a clear message, and held by the database (a unique index) for races."""
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Enter the company's name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Use at most {NAME_MAX} characters."
    parent = None
    if parent_id is None:
        errors["parent_id"] = "Choose where the company stands."
    else:
        try:
            parent = await get_company(actor, parent_id)
        except NotFound:
            errors["parent_id"] = "Choose a company under your wing."
    if parent is not None and kind not in CHILD_KINDS[parent["kind"]]:
        errors["kind"] = f"A {KIND_LABELS[parent['kind']].lower()} cannot hold a {KIND_LABELS.get(kind, kind).lower()}."
    same_name = WhereRaw("lower(name) = {}", name.lower())
    if not errors and parent and await Company.exists().where((Company.parent == parent["id"]) & same_name):
        errors["name"] = _taken(parent, name)
    if errors:
        raise ValidationFailed(errors)
    assert parent is not None
    return parent


def _submission_key(actor: Actor, form_token: str) -> str | None:
    token = form_token.strip()
    if not FORM_TOKEN.fullmatch(token):
        return None  # no token (an API-like post, a test): no idempotence, the name rule still holds
    return f"company.create:{actor.user_id}:{token}"


async def _made_by(actor: Actor, dedupe_key: str, name: str) -> dict[str, Any] | None:
    """The company an earlier post of this form made, if any. A form re-sent
    with another name (Back, edit, Save) made something else: say so."""
    entry = await AuditEntry.select(AuditEntry.company).where(AuditEntry.dedupe_key == dedupe_key).first()
    if entry is None or entry["company"] is None:
        return None
    company = await get_company(actor, entry["company"])
    if company["name"].lower() != name.lower():
        raise ValidationFailed(
            {"form_token": f"This form already created {company['name']}. Open Create Company again for another."}
        )
    return company


async def insert_company(name: str, kind: str, parent: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """Insert a node and give it its path; call inside a transaction."""
    row = (
        await Company.insert(Company(name=name, kind=kind, parent=parent and parent["id"], path="", created_at=now))
    )[0]
    path = f"{parent['path'] if parent else '/'}{row['id']}/"
    await Company.update({Company.path: path}).where(Company.id == row["id"])
    return {"id": row["id"], "name": name, "kind": kind, "path": path, "parent": parent and parent["id"]}


class CompanyRow(TypedDict):
    """A company on the Companies list, with its parent's name."""

    id: int
    name: str
    kind: str
    parent_id: int | None
    parent_name: str | None


async def list_companies(actor: Actor, q: str, page: int) -> Page[CompanyRow]:
    """Every company under the actor's wing but their own, filtered by name."""
    require_partner_manager(actor)
    where = under_wing(actor) & (Company.id != actor.company_id)
    if q:
        where &= db.contains("company.name", q)
    select = (
        Company.select(
            Company.id,
            Company.name,
            Company.kind,
            Company.parent.id.as_alias("parent_id"),
            Company.parent.name.as_alias("parent_name"),
        )
        .where(where)
        .order_by(Company.name)
        .order_by(Company.id)
    )
    return await paginate(select, Company.count().where(where), page)


async def wing_tree(actor: Actor) -> list[dict[str, Any]]:
    """The partners and sub-partners under the wing, in tree order, each with its
    depth and its number of direct customers: the dashboard's outline."""
    require_partner_manager(actor)
    nodes = await Company.select(Company.id, Company.name, Company.kind, Company.path).where(
        under_wing(actor) & (Company.kind != CompanyKind.CUSTOMER)
    )
    counts = await Company.raw(
        "SELECT parent AS id, COUNT(*) AS customers FROM company "
        "WHERE kind = 'customer' AND path LIKE {} GROUP BY parent",
        actor.company_path + "%",
    )
    by_id = {row["id"]: row["customers"] for row in counts}
    base_depth = actor.company_path.count("/")
    # Sort by the names along the path so children follow their parent.
    names = {n["id"]: n["name"].lower() for n in nodes}

    def key(node: dict[str, Any]) -> list[str]:
        return [names.get(int(part), "") for part in node["path"].strip("/").split("/")]

    return [
        {**node, "depth": node["path"].count("/") - base_depth, "customers": by_id.get(node["id"], 0)}
        for node in sorted(nodes, key=key)
    ]


async def parent_choices(actor: Actor) -> list[dict[str, Any]]:
    """Companies that may hold new companies: partners and sub-partners under the wing."""
    return await wing_tree(actor)


async def manageable_customer(actor: Actor, company_id: int) -> dict[str, Any]:
    """ "Manage Company" is offered on customers under the wing, to partner managers."""
    company = await get_company(actor, company_id)  # first: outside the wing is 404 for everyone
    require_partner_manager(actor)
    require(actor, Capability.CUSTOMERS)
    if company["kind"] != CompanyKind.CUSTOMER:
        raise PermissionDenied("Manage Company is for customer companies.")
    return company


async def enter_manage_mode(actor: Actor, company_id: int, now: datetime) -> dict[str, Any]:
    company = await manageable_customer(actor, company_id)
    await audit.record(actor, "manage.enter", company["id"], now, {"company": company["name"]})
    return company


async def exit_manage_mode(actor: Actor, now: datetime) -> None:
    if actor.managing_id is not None:
        await audit.record(actor, "manage.exit", actor.managing_id, now, {"company": actor.managing_name})
