"""The SCIM User the portal serves, the discovery documents that describe it,
and how tolerant the portal is of what identity providers send.

Only what the portal can keep is declared: userName, name, displayName, active,
emails (and the common id, externalId, meta). Other attributes Entra ID and
Okta send (title, phoneNumbers, the enterprise extension) are accepted and
dropped, as RFC 7644 lets a service provider do."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ComplexAttribute,
    Email,
    ETag,
    Filter,
    Meta,
    Name,
    Patch,
    Required,
    Resource,
    ResourceType,
    Schema,
    ScimPolicy,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
MAX_RESULTS = 200
DEFAULT_COUNT = 100


class PortalUser(Resource[Any]):
    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    name: Name | None = None
    Name: ClassVar[type[ComplexAttribute]] = Name
    display_name: str | None = None
    active: bool | None = None
    emails: list[Email] | None = None
    Emails: ClassVar[type[ComplexAttribute]] = Email


# Entra ID writes "active": "False", removes a value by sending it, and adds
# emails[type eq "work"].value to a user that has no work address yet; both it
# and Okta send attributes the portal does not keep.
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


def user_schema(base_url: str) -> Schema:
    """The published User schema. emails is declared required: every portal user
    has an e-mail address (a userName that is one stands in when none is sent)."""
    schema = PortalUser.to_schema()
    for attribute in schema.attributes or []:
        if attribute.name == "emails":
            attribute.required = Required.true
            for sub in attribute.sub_attributes or []:
                if sub.name == "value":
                    sub.required = Required.true
    schema.meta = _meta("Schema", f"{base_url}/Schemas/{USER_SCHEMA}")
    return schema


def user_resource_type(base_url: str) -> ResourceType:
    resource_type = ResourceType.from_resource(PortalUser)
    resource_type.description = "A learner of the company"
    resource_type.meta = _meta("ResourceType", f"{base_url}/ResourceTypes/User")
    return resource_type


def service_provider_config(base_url: str) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A SCIM token of the company, created on its page in the portal",
                primary=True,
            )
        ],
        meta=_meta("ServiceProviderConfig", f"{base_url}/ServiceProviderConfig"),
    )


def _meta(resource_type: str, location: str) -> Meta:
    return Meta(resource_type=resource_type, location=location)
