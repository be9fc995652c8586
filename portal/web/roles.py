"""Which capability each page and action needs (portal/domain/access.py says
which roles hold it). The actor dependency asks this on every signed-in route,
so a role that cannot act is refused before the handler runs, and a page a role
may not see (licences, for billing staff) answers 403 too. The domain functions
that act check again: this table is for pages, which the domain does not know.

A route missing here needs no capability beyond being signed in: reading, and the
user's own account."""

from __future__ import annotations

import re
from functools import lru_cache

from portal.domain.access import Capability

_C = Capability
_READ = frozenset({"GET", "HEAD"})
_ANY = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_WRITE = _ANY - _READ

# (path template pattern, methods, capability); the first that matches decides.
_RULES: tuple[tuple[str, frozenset[str], Capability], ...] = (
    (r"/settings/api-keys.*", _WRITE, _C.API_KEYS),
    (r"/settings/sign-in(/.*)?", _WRITE, _C.SSO),
    # "Send me a test" and the live preview are first steps of a change: the change's capability.
    (r"/settings/(emails|brand)(/.*)?", _WRITE, _C.SETTINGS),
    (r"/companies/{company_id}/scim-tokens.*", _WRITE, _C.SSO),
    (r"/settings/webhooks.*", _WRITE, _C.WEBHOOKS),
    (r"/(notifications|dashboard)/settings|/audit/retention", _WRITE, _C.SETTINGS),
    (r"/billing/settings.*|/billing/catalogue", _WRITE, _C.BILLING_SETTINGS),
    # Adding, deactivating and resetting users: CUSTOMERS here; the domain asks STAFF for the partner's own.
    (r"/companies", _WRITE, _C.CUSTOMERS),
    (r"/companies/new", _ANY, _C.CUSTOMERS),
    (r"/companies/{company_id}/users(/new)?", _ANY, _C.CUSTOMERS),
    (r"/companies/{company_id}/users/{user_id}/role", _WRITE, _C.STAFF),
    (r"/companies/{company_id}/users/{user_id}/.+", _WRITE, _C.CUSTOMERS),
    (r"/companies/{company_id}/manage", _ANY, _C.CUSTOMERS),
    (r"/companies/{company_id}/licences/orders(/new)?", _ANY, _C.ORDERS),
    (r"/companies/{company_id}/licences/orders/.+", _ANY, _C.ORDERS),
    (r"/licences/orders/{order_id}/.+", _ANY, _C.ORDERS),
    (r"/bulk(/confirm)?|/bulk/{run_id}/resume", _ANY, _C.BULK),
    (r"/dashboard/batches/{batch_id}/renew", _ANY, _C.LICENCES),
    (r"/companies/{company_id}(/licences|/imports|/auto-renewal|/alignment)(/.*)?", _WRITE, _C.LICENCES),
    (r"/notifications/{email_id}/resend", _WRITE, _C.CUSTOMERS),
    # Licence pages, read: not for billing staff.
    (
        r"/companies/{company_id}(/licences|/imports|/auto-renewal|/alignment|/learners\.csv|/summary)(/.*)?",
        _READ,
        _C.SEE_LICENCES,
    ),
    (r"/licences/.*|/bulk/.*|/dashboard/batches", _READ, _C.SEE_LICENCES),
    # Billing: forms and quotes are the first step of a change, so they need the change's capability.
    (r"/companies/{company_id}/billing/(buy|change|add-users|account|address|card)(/.*)?", _ANY, _C.INVOICES),
    (r"/billing/subscriptions/{subscription_id}/.+", _WRITE, _C.INVOICES),
    (r"/invoices/{invoice_id}/(pay|payment|confirm-payment)", _ANY, _C.PAYMENTS),
    (r"/invoices/{invoice_id}/refund(/confirm)?", _ANY, _C.REFUNDS),
    (r"/invoices/{invoice_id}/(reissue|void)", _WRITE, _C.INVOICES),
)
_COMPILED = tuple((re.compile(pattern.replace("{", r"\{").replace("}", r"\}")), m, c) for pattern, m, c in _RULES)
_TYPED = re.compile(r"\{(\w+):\w+\}")


@lru_cache(maxsize=1024)
def capability_for(method: str, path_template: str) -> Capability | None:
    """What a request to this route needs; None: being signed in is enough.
    Kept per route and method: the answer depends on nothing else, and every
    signed-in request would otherwise try the patterns one by one."""
    # The router's template is "/companies/{company_id}"; a route's own path says "{company_id:int}".
    path = _TYPED.sub(r"{\1}", path_template).rstrip("/") or "/"
    for pattern, methods, capability in _COMPILED:
        if method in methods and pattern.fullmatch(path):
            return capability
    return None
