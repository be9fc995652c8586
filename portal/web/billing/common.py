"""What every billing page shares: amounts and invoice numbers as the templates
write them, and the forms read into the domain's values (purchase, card, address).

Reading is lenient, as in portal/web/forms.py: an empty number is 0, a number that
is not one is reported next to its field, and the domain says what else is wrong."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from multidict import MultiMapping

from portal.domain.access import Actor
from portal.domain.billing import countries, invoices, money, receivables, subscription_list
from portal.domain.billing.quotes import Purchase, Quoted
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.services import Services
from portal.web.forms import text, to_int
from portal.web.render import render

METHOD_LABELS = subscription_list.METHOD_LABELS
PAYMENT_LABELS = invoices.METHOD_LABELS
KIND_LABELS = invoices.KIND_LABELS
STATUS_LABELS = {"draft": "Draft", "issued": "Issued", "paid": "Paid", "void": "Void"}
ADDRESS_FIELDS = ("billing_name", "billing_email", "address", "country")


def address_values(account: dict | None, company: dict, actor: Actor) -> dict[str, Any]:
    """The billing address as the account keeps it; a first one starts from the company's
    name and the manager's e-mail, which most customers keep. A partner acting for the
    customer is not its billing contact, so the e-mail is left for them to type."""
    values = {f: (account or {}).get(f) or "" for f in ADDRESS_FIELDS}
    values["billing_name"] = values["billing_name"] or company["name"]
    if actor.managing_id is None:
        values["billing_email"] = values["billing_email"] or actor.email
    return values


def services_of(request: HTMXRequest) -> Services:
    """What the app was handed at start-up (portal/services.py): the card processor."""
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


def page_helpers(request: HTMXRequest) -> dict[str, Any]:
    """Functions the billing templates call: every amount goes out with its currency."""
    services = services_of(request)
    now = utcnow()
    return {
        "days_overdue": lambda due_at: receivables.days_overdue(due_at, now),
        "money": money.format_money,
        "rate": money.format_rate,
        "invoice_number": invoices.format_invoice_number,
        "method_labels": METHOD_LABELS,
        "payment_labels": PAYMENT_LABELS,
        "invoice_kinds": KIND_LABELS,
        "invoice_statuses": STATUS_LABELS,
        "test_mode": services.processor.test_mode,
        "card_entry": services.card_entry,
        "countries": countries.countries(),
        "known_country": countries.known_code,
        "country_name": countries.country_name,
    }


def form_page(
    request: HTMXRequest, template: str, context: dict[str, Any], values: Mapping[str, Any], errors: dict[str, str]
) -> Template:
    """A billing page with a form on it: what the form sent, shown again, and what was
    wrong with it beside each field (400 when anything was)."""
    return render(
        request,
        template,
        {**page_helpers(request), **context, "values": values, "errors": errors},
        status_code=400 if errors else 200,
    )


def _count(values: Mapping[str, Any], name: str, errors: dict[str, str]) -> int:
    raw = text(values.get(name), 20)
    if not raw:
        return 0
    number = to_int(raw)
    if number is None:
        errors[name] = "Enter a whole number of users (0 or more)."
        return 0
    return number


def purchase_from(values: MultiMapping[Any]) -> Purchase:
    """The buy form, or the same values carried from the quote to "confirm"."""
    errors: dict[str, str] = {}
    purchase = Purchase(
        tier=text(values.get("tier"), 40),
        extra_users=_count(values, "extra_users", errors),
        read_only_users=_count(values, "read_only_users", errors),
        addons=tuple(dict.fromkeys(text(a, 40) for a in values.getall("addons", []) if text(a, 40))),
        method=text(values.get("method"), 10),
    )
    if errors:
        raise ValidationFailed(errors)
    return purchase


def change_from(values: Mapping[str, Any]) -> dict[str, Any]:
    """Tier and users asked for by Upgrade (more or fewer)."""
    errors: dict[str, str] = {}
    change = {
        "tier": text(values.get("tier"), 40),
        "extra_users": _count(values, "extra_users", errors),
        "read_only_users": _count(values, "read_only_users", errors),
    }
    if errors:
        raise ValidationFailed(errors)
    return change


def added_from(values: Mapping[str, Any]) -> dict[str, int]:
    """The users "Add users" asks for, by kind."""
    errors: dict[str, str] = {}
    added = {
        "standard_users": _count(values, "standard_users", errors),
        "read_only_users": _count(values, "read_only_users", errors),
    }
    if errors:
        raise ValidationFailed(errors)
    return added


def quoted_from(values: Mapping[str, Any]) -> Quoted:
    """The price the quote page showed, sent back with its confirm button. Missing or
    tampered fields make a price no quote has, so the page shows the price again."""
    total, rate = to_int(values.get("quoted_total_cents")), to_int(values.get("quoted_tax_rate_bp"))
    return Quoted(
        total_cents=-1 if total is None else total,
        currency=text(values.get("quoted_currency"), 3),
        tax_rate_bp=-1 if rate is None else rate,
        key=text(values.get("quoted_key"), 64),
    )


def quote_key() -> str:
    """The key of one quote page's confirm button (billing/confirmations.py)."""
    return secrets.token_urlsafe(18)


def payment_method_from(values: Mapping[str, Any]) -> str:
    """The id the processor handed the browser for the card typed into its own form
    (partials/billing/_card_fields.html); a billing form never carries the card."""
    return text(values.get("payment_method"), 100)


async def card_setup(request: HTMXRequest) -> str | None:
    """What the card form of a page needs from the processor before the card is typed."""
    return await services_of(request).processor.card_setup()


def address_from(values: Mapping[str, Any]) -> dict[str, str]:
    """Read a little past each column's size, so that the domain says what is too long
    instead of the form cutting it ("Britain" is not "BR")."""
    return {
        "billing_name": text(values.get("billing_name"), 300),
        "billing_email": text(values.get("billing_email"), 300),
        "address": text(values.get("address"), 600),
        "country": text(values.get("country"), 60),
    }


def kept_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the form sent, to show again beside its errors (a card's number or code is never sent)."""
    return {k: v for k, v in values.items() if k not in ("card_number", "cvc", "_csrf_token")}
