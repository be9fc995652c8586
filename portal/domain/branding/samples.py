"""Made-up values for every field a partner's template may use: the editor's
preview, the check a template passes before it is saved, and "Send me a test"."""

from __future__ import annotations

from typing import Any

from portal.domain.emails.kinds import Kind

_SAMPLES: dict[str, Any] = {
    "amount": "$750.00",
    "answer_by": "2027-03-24T00:00:00+00:00",
    "as_what": "a manager",
    "by": "Dana Reyes",
    "by_company": "Acme MSP",
    "company_id": 0,
    "company_name": "Brightpath Dental",
    "confirm": False,
    "coterm_ends_at": "2027-09-30T00:00:00+00:00",
    "cotermed": False,
    "credit_note": "CN-0001",
    "days": 3,
    "declined_by": "Dana Reyes",
    "email": "sam.lee@brightpath.example",
    "endpoint_id": 0,
    "ended": False,
    "ends": "Wednesday 10 March 2027, 09:00 (Europe/London)",
    "ends_at": "2027-03-10T09:00:00+00:00",
    "ends_on": "2027-03-10T00:00:00+00:00",
    "expired_url": "https://portal.example/companies/0/licences?tab=expired",
    "expires": "04/27",
    "holders": 18,
    "hours": 72,
    "invited_by": "Dana Reyes",
    "invoice": "INV-0042",
    "invoice_id": 0,
    "invoice_number": "INV-0042",
    "last4": "4242",
    "losing": 18,
    "moving": 0,
    "name": "Sam Lee",
    "new_end": "2028-03-10T09:00:00+00:00",
    "number": "INV-0042",
    "old_end": "2027-03-10T09:00:00+00:00",
    "on_day": "2027-03-03T09:00:00+00:00",
    "paid": True,
    "paid_by": "card",
    "po_number": "PO-1234",
    "product_name": "Security Awareness Training",
    "quantity": 25,
    "reason": "The budget moves to next quarter.",
    "renewal": False,
    "renews": True,
    "renews_ending": None,
    "renews_on": "2027-03-10T00:00:00+00:00",
    "request_url": "https://portal.example/companies/0/licences/orders/new",
    "requested_by": "Sam Lee",
    "retry_on": "2027-03-13T00:00:00+00:00",
    "same_quantity": True,
    "seats": 25,
    "sender_name": "Acme MSP",
    "set_password_path": "/set-password/sample",
    "starts_at": "2026-03-10T09:00:00+00:00",
    "term_end": "2027-03-10T00:00:00+00:00",
    "tier_name": "Pro",
    "to_card": True,
    "url": "https://hooks.acme.example/portal",
    "within": "72 hours",
}


def sample(kind: Kind, sender_name: str) -> dict[str, Any]:
    """A value for each of the kind's template fields (an unlisted name: its own name)."""
    values = {name: _SAMPLES.get(name, name) for name in kind.template_fields}
    values["sender_name"] = sender_name
    return values
