"""A portal user as a SCIM User, and what the portal takes from one.

The identity provider's attributes are kept as it wrote them (scim_user), so it
reads back what it sent; the portal's own name, e-mail and active flag win where
a manager changed them in the portal since."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim2_models import Context, InvalidValueException

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


def _chosen_email(emails: list[dict[str, Any]] | None) -> dict[str, Any] | None:
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


@dataclass(frozen=True)
class Kept:
    """The identity provider's attributes as kept (scim_user.attributes), with
    the portal e-mail (None when they give none) and name they give."""

    attributes: dict[str, Any]
    email: str | None
    name: str

    @classmethod
    def read(cls, attributes: str | None) -> Kept:
        doc = json.loads(attributes) if attributes else {}
        return cls(doc, _portal_email(doc), name_of(doc))


def document(row: dict[str, Any], base_url: str, kept: Kept | None = None) -> dict[str, Any]:
    """The user as SCIM's JSON answers it (a response's attributes, all of them).
    `row`: the user's id, email, name, active, created_at, and the scim_user
    columns user_name and attributes (null for a user never provisioned).
    `kept`: the attributes just kept, when the caller has them (a create), so
    that nothing is read back or checked again."""
    kept = kept or Kept.read(row.get("attributes"))
    doc = dict(kept.attributes)
    doc["userName"] = row.get("user_name") or row["email"]
    if kept.name != row["name"]:
        doc["displayName"] = row["name"]
    if kept.email != row["email"]:
        chosen = _chosen_email(doc.get("emails"))
        if chosen is None:
            doc["emails"] = [{"value": row["email"], "type": "work", "primary": True}]
        else:
            doc["emails"] = [{**e, "value": row["email"]} if e is chosen else e for e in doc["emails"]]
    # A provider that removed `active` reads it as unassigned, which the portal takes as active.
    if not row["active"] or "active" in kept.attributes or not kept.attributes:
        doc["active"] = bool(row["active"])
    created, location = _instant(row["created_at"]), f"{base_url}/Users/{row['id']}"
    meta = {"resourceType": "User", "created": created, "lastModified": created, "location": location}
    return {"schemas": [USER_SCHEMA], "id": str(row["id"]), **doc, "meta": meta}


def _instant(at: datetime) -> str:
    """As the SCIM models write a date and time (ISO 8601, UTC as Z)."""
    return at.isoformat().replace("+00:00", "Z")


def from_document(doc: dict[str, Any]) -> PortalUser:
    """A document `document` made, as the model (to dump with response parameters)."""
    return PortalUser.model_validate(doc, scim_policy=POLICY)


def to_resource(row: dict[str, Any], base_url: str) -> PortalUser:
    """`document`'s user as the model."""
    return from_document(document(row, base_url))


def _portal_email(doc: dict[str, Any]) -> str | None:
    try:
        return email_of(doc)
    except InvalidValueException:
        return None
