"""A portal user as a SCIM User, and what the portal takes from one.

The identity provider's attributes are kept as it wrote them (scim_user), so it
reads back what it sent; the portal's own name, e-mail and active flag win where
a manager changed them in the portal since."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from scim2_models import Context, Email, InvalidValueException, Meta

from portal.domain.scim.schema import POLICY, USER_SCHEMA, PortalUser
from portal.domain.users import NAME_MAX, normalise_email

# What the portal sets itself and never keeps from a request.
_SERVER_OWNED = ("schemas", "id", "meta")


def kept_attributes(user: PortalUser) -> dict[str, Any]:
    """The attributes to keep of what the identity provider wrote."""
    doc = user.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, scim_policy=POLICY)
    for key in _SERVER_OWNED:
        doc.pop(key, None)
    return doc


def _chosen_email(emails: list[dict] | None) -> dict | None:
    """The address the portal uses: the primary one, else the work one, else the first."""
    emails = [e for e in emails or [] if e.get("value")]
    for pick in (lambda e: e.get("primary") is True, lambda e: e.get("type") == "work", lambda e: True):
        for email in emails:
            if pick(email):
                return email
    return None


def email_of(doc: dict[str, Any]) -> str:
    """The portal e-mail the attributes give. Raises InvalidValueException."""
    chosen = _chosen_email(doc.get("emails"))
    candidate = chosen["value"] if chosen else doc.get("userName") or ""
    try:
        return normalise_email(candidate)
    except ValueError:
        if chosen:
            raise InvalidValueException(detail=f"emails: {candidate!r} is not an e-mail address.") from None
        raise InvalidValueException(
            detail="An e-mail address is needed: send emails, or a userName that is an e-mail address."
        ) from None


def name_of(doc: dict[str, Any]) -> str:
    """The portal name the attributes give: displayName, else name.formatted, else
    given and family name, else the userName."""
    name = doc.get("name") or {}
    parts = [name.get("givenName"), name.get("familyName")]
    for candidate in (
        doc.get("displayName"),
        name.get("formatted"),
        " ".join(p for p in parts if p),
        doc.get("userName"),
    ):
        text = " ".join(str(candidate or "").split())
        if text:
            return text[:NAME_MAX]
    return ""


def to_resource(row: dict[str, Any], base_url: str, parsed: PortalUser | None = None) -> PortalUser:
    """`row`: the user's id, email, name, active, created_at, and the scim_user
    columns user_name and attributes (null for a user never provisioned).
    `parsed`: the request the attributes were kept from, when the caller has
    just parsed it (a create), used (and changed) instead of validating the
    attributes again: validation is most of the Python a create costs."""
    doc = json.loads(row["attributes"]) if row.get("attributes") else {}
    user = parsed or PortalUser.model_validate({**doc, "schemas": [USER_SCHEMA]}, scim_policy=POLICY)
    user.schemas = [USER_SCHEMA]
    user.id = str(row["id"])
    user.user_name = row.get("user_name") or row["email"]
    if name_of(doc) != row["name"]:
        user.display_name = row["name"]
    if _portal_email(doc) != row["email"]:
        chosen = _chosen_email(doc.get("emails"))
        if user.emails and chosen is not None:
            user.emails[next(i for i, e in enumerate(doc["emails"]) if e is chosen)].value = row["email"]
        else:
            user.emails = [Email(value=row["email"], type=Email.Type.work, primary=True)]
    # A provider that removed `active` reads it as unassigned, which the portal takes as active.
    if not row["active"] or "active" in doc or not doc:
        user.active = bool(row["active"])
    created: datetime = row["created_at"]
    user.meta = Meta(
        resource_type="User",
        created=created,
        last_modified=created,
        location=f"{base_url}/Users/{row['id']}",
    )
    return user


def _portal_email(doc: dict[str, Any]) -> str | None:
    try:
        return email_of(doc)
    except InvalidValueException:
        return None
