"""What a SCIM token does to its company's learners, through the portal's own
rules: a new user is created as "Add User" creates a learner (and takes a free
seat by the same rule), `active: false` deactivates as Deactivate does (and frees
the seat), and a user outside the token's company does not exist (404).

Managers are not provisioned: they are the portal's to add, and a provider that
sends a manager's address is told it is taken (409)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from piccolo.columns import Column
from pydantic import ValidationError
from scim2_models import (
    Context,
    InvalidValueException,
    ListResponse,
    PatchOp,
    SCIMException,
    UniquenessException,
)
from scim2_models import NotFoundException as ScimNotFound

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, may_act_on
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.licences import allocation
from portal.domain.scim import query
from portal.domain.scim.resources import (
    Kept,
    document,
    email_of,
    from_document,
    kept_attributes,
    name_of,
    to_resource,
)
from portal.domain.scim.schema import DEFAULT_COUNT, MAX_RESULTS, POLICY, PortalUser
from portal.domain.users import check_new_user, taken_email
from portal.tables import Company, User
from portal.tables.scim import ScimUser

_SELECT = (
    "SELECT u.id, u.email, u.name, u.active, u.created_at, s.id AS scim_id, s.user_name, s.attributes "
    "FROM portal_user u LEFT JOIN scim_user s ON s.portal_user = u.id "
    "WHERE u.company = {} AND u.role = 'learner' AND s.deleted_at IS NULL"
)


def parse(model_payload: Any, context: Context) -> PortalUser:
    """A request body as a User, refused with invalidValue or invalidSyntax when it is not one."""
    if not isinstance(model_payload, dict):
        raise InvalidValueException(detail="The body must be a JSON object.")
    try:
        return PortalUser.model_validate(model_payload, scim_ctx=context, scim_policy=POLICY)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> SCIMException:
    errors = exc.errors()
    if not errors:
        return InvalidValueException(detail=str(exc))
    where = ".".join(str(part) for part in errors[0]["loc"])
    return InvalidValueException(detail=f"{where}: {errors[0]['msg']}" if where else errors[0]["msg"])


async def _row(actor: Actor, user_id: str) -> dict[str, Any]:
    if not (user_id.isascii() and user_id.isdigit() and len(user_id) < 10):
        raise ScimNotFound(detail=f"No User {user_id}.")
    rows = await User.raw(_SELECT + " AND u.id = {}", actor.company_id, int(user_id))
    if not rows:
        raise ScimNotFound(detail=f"No User {user_id}.")
    return cast("dict[str, Any]", rows[0])


async def get(actor: Actor, user_id: str, base_url: str) -> PortalUser:
    return to_resource(await _row(actor, user_id), base_url)


async def _document(actor: Actor, user_id: str, base_url: str) -> dict[str, Any]:
    return document(await _row(actor, user_id), base_url)


async def search(
    actor: Actor, filter_text: str | None, start_index: int, count: int | None, base_url: str
) -> ListResponse[PortalUser]:
    """One page of the company's learners, in id order; startIndex is 1-based."""
    where, args = query.filter_sql(filter_text)
    start_index = max(1, start_index)
    count = DEFAULT_COUNT if count is None else max(0, min(count, MAX_RESULTS))
    total = (
        await User.raw(
            "SELECT count(*) AS n FROM portal_user u LEFT JOIN scim_user s ON s.portal_user = u.id "
            f"WHERE u.company = {{}} AND u.role = 'learner' AND s.deleted_at IS NULL AND {where}",
            actor.company_id,
            *args,
        )
    )[0]["n"]
    rows = (
        await User.raw(
            f"{_SELECT} AND {where} ORDER BY u.id LIMIT {{}} OFFSET {{}}",
            actor.company_id,
            *args,
            count,
            start_index - 1,
        )
        if count
        else []
    )
    listed: ListResponse[PortalUser] = ListResponse[PortalUser](
        total_results=total,
        start_index=start_index,
        items_per_page=len(rows),
        resources=[to_resource(row, base_url) for row in rows],
    )
    return listed


async def _check_user_name(actor: Actor, user_name: str, except_user: int | None) -> None:
    key = user_name.lower()
    # Two lookups that each use an index (the company's undeleted userNames; the
    # unique e-mail), not one OR across a join, which read every user of the
    # company: a 10,000-user import slowed with each user it made.
    taken = await User.raw(
        "SELECT s.portal_user AS id FROM scim_user s JOIN portal_user u ON u.id = s.portal_user "
        "WHERE s.company = {} AND s.user_name_key = {} AND s.deleted_at IS NULL AND u.company = {} "
        "UNION ALL SELECT u.id FROM portal_user u WHERE u.email = {} AND u.company = {} "
        "AND NOT EXISTS (SELECT 1 FROM scim_user s WHERE s.portal_user = u.id)",
        actor.company_id,
        key,
        actor.company_id,
        key,
        actor.company_id,
    )
    if any(row["id"] != except_user for row in taken):
        raise _user_name_taken(user_name)


def _user_name_taken(user_name: str) -> UniquenessException:
    return UniquenessException(detail=f"userName {user_name!r} is taken in this company.")


def _user_name(user: PortalUser) -> str:
    user_name = " ".join((user.user_name or "").split())
    if not user_name:
        raise InvalidValueException(detail="userName is required.")
    if len(user_name) > 300:
        raise InvalidValueException(detail="userName: use at most 300 characters.")
    return user_name


def _form_errors(invalid: ValidationFailed) -> SCIMException:
    message = " ".join(invalid.errors.values())
    if "already has an account" in invalid.errors.get("email", ""):
        return UniquenessException(detail=message)
    return InvalidValueException(detail=message)


async def _keep(user_id: int, company_id: int, user_name: str, user: PortalUser, existing: int | None) -> str:
    """Write the provider's view of the user; the attributes as kept (JSON)."""
    doc = kept_attributes(user)
    doc["userName"] = user_name
    attributes = json.dumps(doc)
    values: dict[Column | str, Any] = {
        ScimUser.user_name: user_name,
        ScimUser.user_name_key: user_name.lower(),
        ScimUser.external_id: user.external_id,
        ScimUser.attributes: attributes,
    }
    if existing:
        await ScimUser.update(values).where(ScimUser.id == existing)
    else:
        await ScimUser.insert(
            ScimUser(
                portal_user=user_id,
                company=company_id,
                user_name=user_name,
                user_name_key=user_name.lower(),
                external_id=user.external_id,
                attributes=attributes,
            )
        )
    return attributes


# A create's checks: the company's row (locked, on PostgreSQL), the userName
# taken in the company (as `_check_user_name` asks), and whoever holds the
# address, with whether they are this company's learner whom the provider deleted.
_CREATE_CHECKS = """
locked AS (
  SELECT path FROM company WHERE id = {}%s
), taken AS (
  SELECT 1 AS hit FROM scim_user s JOIN portal_user u ON u.id = s.portal_user
  WHERE s.company = {} AND s.user_name_key = {} AND s.deleted_at IS NULL AND u.company = {}
  UNION ALL SELECT 1 FROM portal_user u WHERE u.email = {} AND u.company = {}
  AND NOT EXISTS (SELECT 1 FROM scim_user s WHERE s.portal_user = u.id)
), holder AS (
  SELECT u.id, (u.company = {} AND u.role = 'learner' AND s.deleted_at IS NOT NULL) AS deleted
  FROM portal_user u LEFT JOIN scim_user s ON s.portal_user = u.id WHERE u.email = {}
)"""
_CREATE_OUTCOME = (
    "(SELECT path FROM locked) AS company_path, "
    "EXISTS (SELECT 1 FROM taken) AS taken, (SELECT id FROM holder WHERE deleted) AS deleted, "
    "EXISTS (SELECT 1 FROM holder) AS email_taken"
)
# PostgreSQL: the company's lock, the checks, and only if they pass, the learner
# as "Add User" inserts one, their SCIM record and the audit entry, in one
# statement. Its checks read the snapshot the statement began with: a create
# that waited for the lock misses what the one before it wrote, and the unique
# indexes (the e-mail; a company's undeleted userNames) refuse its learner.
_CREATE_SQL = f"""
WITH {_CREATE_CHECKS % " FOR UPDATE"}, made AS (
  INSERT INTO portal_user (company, email, name, role, created_at)
  SELECT {{}}, {{}}, {{}}, 'learner', {{}}
  WHERE {{}} AND EXISTS (SELECT 1 FROM locked)
    AND NOT EXISTS (SELECT 1 FROM taken) AND NOT EXISTS (SELECT 1 FROM holder)
  RETURNING id
), kept AS (
  INSERT INTO scim_user (portal_user, company, user_name, user_name_key, external_id, attributes)
  SELECT id, {{}}, {{}}, {{}}, {{}}, {{}} FROM made
), audited AS (
  INSERT INTO audit_entry (at, actor, acting_as, company, action, detail)
  SELECT {{}}, {{}}, {{}}, {{}}, 'user.create_learner', CAST({{}} AS json) FROM made
)
SELECT (SELECT id FROM made) AS id, {_CREATE_OUTCOME}"""


async def create(actor: Actor, payload: Any, now: datetime, base_url: str) -> dict[str, Any]:
    """Under the company's lock, so the same create sent ten times at once makes
    one user: the others find the userName (or the e-mail) taken, by the checks
    or by the unique indexes (see `_CREATE_SQL`). One short
    transaction: one statement for the lock, the checks and the learner (their
    SCIM record and audit entry with them), one for their seat. The answer is
    the new user's document (`resources.document`), made from what was kept."""
    user = parse(payload, Context.RESOURCE_CREATION_REQUEST)
    user_name = _user_name(user)
    doc = kept_attributes(user)
    doc["userName"] = user_name
    email, name = email_of(doc), name_of(doc)
    kept = Kept(doc, email, name)
    attributes = json.dumps(doc)
    key = user_name.lower()
    company_id = actor.company_id
    # The token's company, as the token's lookup read it: SCIM acts on no other.
    company = {"id": company_id, "name": actor.company_name, "kind": actor.company_kind, "path": actor.company_path}
    email, name, errors = check_new_user(actor, company, email, name, "learner", email_checked=True)
    checks = (company_id, company_id, key, company_id, key, company_id, company_id, email)
    try:
        async with db.write_transaction():
            if db.is_postgres():
                found = await User.raw(
                    _CREATE_SQL,
                    *checks,
                    *(company_id, email, name, now, not errors),
                    *(company_id, user_name, key, user.external_id, attributes),
                    *(now, actor.user_id, actor.managing_id, company_id, json.dumps({"email": email})),
                )
            else:
                found = await User.raw(f"WITH {_CREATE_CHECKS % ''} SELECT NULL AS id, {_CREATE_OUTCOME}", *checks)
            outcome = found[0]
            if outcome["company_path"] is None or not may_act_on(actor, outcome["company_path"]):
                raise NotFound("No such company.")
            if outcome["taken"]:
                raise _user_name_taken(user_name)
            if outcome["deleted"]:
                # The provider deleted this learner and now creates them again: the same person comes back,
                # once (a create that waited for the lock read them as deleted too).
                if (
                    not await ScimUser.update({ScimUser.deleted_at: None})
                    .where((ScimUser.portal_user == outcome["deleted"]) & ScimUser.deleted_at.is_not_null())
                    .returning(ScimUser.id)
                ):
                    raise _user_name_taken(user_name)
                return await _write(actor, str(outcome["deleted"]), user, now, base_url)
            if outcome["email_taken"] and "email" not in errors:
                errors["email"] = taken_email(email)
            if errors:
                raise _form_errors(ValidationFailed(errors))
            user_id = outcome["id"] or await _insert_learner(actor, company_id, email, name, now)
            if not outcome["id"]:
                await _keep(user_id, company_id, user_name, user, None)
            await allocation.allocate_new_learner(actor, company_id, user_id, now, locked_company=company)
    except Exception as exc:
        # The second of two creates at once ("Add User" too), refused by a unique index.
        if db.is_unique_violation(exc, "email"):
            raise UniquenessException(detail=taken_email(email)) from None
        if db.is_unique_violation(exc, "scim_user_name"):
            raise _user_name_taken(user_name) from None
        raise
    active = user.active is not False
    if not active:
        await allocation.deactivate_user(actor, user_id, now)
    # What `get` would read back, from what was just written (one query fewer a create).
    row = {"id": user_id, "email": email, "name": name, "active": active, "created_at": now, "user_name": user_name}
    return document(row, base_url, kept)


async def _insert_learner(actor: Actor, company_id: int, email: str, name: str, now: datetime) -> int:
    """SQLite's steps of `_CREATE_SQL`'s learner and audit entry (no statement there writes two tables)."""
    user_id: int = (
        await User.insert(User(company=company_id, email=email, name=name, role="learner", created_at=now))
    )[0]["id"]
    await audit.record(actor, "user.create_learner", company_id, now, {"email": email})
    return user_id


async def replace(actor: Actor, user_id: str, payload: Any, now: datetime, base_url: str) -> PortalUser:
    user = parse(payload, Context.RESOURCE_REPLACEMENT_REQUEST)
    return from_document(await _write(actor, user_id, user, now, base_url))


async def patch(actor: Actor, user_id: str, payload: Any, now: datetime, base_url: str) -> PortalUser:
    """Apply the operations to the user as the provider last wrote it (and as the
    portal holds it now), then write the outcome as a replacement would."""
    if not isinstance(payload, dict):
        raise InvalidValueException(detail="The body must be a JSON object.")
    try:
        operations = PatchOp[PortalUser].model_validate(
            payload, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=POLICY
        )
    except ValidationError as exc:
        raise _invalid(exc) from None
    current = await get(actor, user_id, base_url)
    with POLICY:
        try:
            operations.patch(current)
        except ValidationError as exc:
            raise _invalid(exc) from None
    return from_document(await _write(actor, user_id, current, now, base_url))


async def _write(actor: Actor, user_id: str, user: PortalUser, now: datetime, base_url: str) -> dict[str, Any]:
    """Write the user as the provider sent them; their document as it reads back."""
    user_name = _user_name(user)
    doc = kept_attributes(user)
    email, name = email_of(doc), name_of(doc)
    async with db.write_transaction():
        await db.for_update(Company.select(Company.id).where(Company.id == actor.company_id))
        row = await _row(actor, user_id)
        await _check_user_name(actor, user_name, row["id"])
        changes: dict[str, Any] = {}
        if email != row["email"]:
            if await User.exists().where((User.email == email) & (User.id != row["id"])):
                raise UniquenessException(detail=f"{email} already has an account.")
            changes["email"] = email
        if name != row["name"]:
            changes["name"] = name
        if changes:
            await User.update({getattr(User, key): value for key, value in changes.items()}).where(User.id == row["id"])
            await audit.record(actor, "user.update", actor.company_id, now, {"user": row["email"], **changes})
        await _keep(row["id"], actor.company_id, user_name, user, row["scim_id"])
    # Unassigned `active` is taken as active, as a provider that removed it means.
    wanted = user.active is not False
    if row["active"] and not wanted:
        await allocation.deactivate_user(actor, row["id"], now)
    elif wanted and not row["active"]:
        await reactivate(actor, row["id"], now)
    return await _document(actor, user_id, base_url)


async def delete(actor: Actor, user_id: str, now: datetime) -> None:
    """A provider's DELETE: the learner is deactivated (their seat freed) and no
    longer provisioned; the portal keeps the person and their history, as it
    does for every leaver, but the token sees them no more."""
    row = await _row(actor, user_id)
    if row["active"]:
        await allocation.deactivate_user(actor, row["id"], now)
    async with db.write_transaction():
        if row["scim_id"]:
            await ScimUser.update({ScimUser.deleted_at: now}).where(ScimUser.id == row["scim_id"])
        else:
            await ScimUser.insert(
                ScimUser(
                    portal_user=row["id"],
                    company=actor.company_id,
                    user_name=row["email"],
                    user_name_key=row["email"],
                    deleted_at=now,
                )
            )
        await audit.record(actor, "user.scim_delete", actor.company_id, now, {"user": row["email"]})


async def reactivate(actor: Actor, user_id: int, now: datetime) -> None:
    """A provider that turns a learner back on: active again, and a free seat by
    the rule every new learner gets one."""
    async with db.write_transaction():
        await User.update({User.active: True}).where((User.id == user_id) & (User.company == actor.company_id))
        await audit.record(actor, "user.reactivate", actor.company_id, now, {"user": user_id})
    await allocation.allocate_new_learner(actor, actor.company_id, user_id, now)
