"""SCIM 2.0 provisioning of a customer's learners (RFC 7643/7644).

tokens: a customer's bearer tokens and the actor a token acts as; schema: the
User resource the portal serves and the discovery documents; resources: a
portal user as a SCIM User and back; query: the filters and pages of a list;
users: create, read, replace, patch and delete, through the portal's own rules
for users and seats."""
