"""What an audit entry says, in words: one registry from action to sentence.

Each kind of entry has a sentence built from its detail and the name of the
company it is about ("Declined an order of 25 seats for Brightpath Dental:
'Please order through…'"); the person who did it is shown beside it, so the
sentence has no subject. The kinds are grouped in words for the "What" filter.

A sentence is plain text: the page escapes it like any other text, and the CSV
download writes it as it is. An entry whose detail is older or odder than its
sentence expects, and an action with no sentence yet, read as a generic sentence
("Refund issue for Brightpath Dental"), never as an error."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from portal.domain.billing.money import format_money, format_rate

QUOTE_LIMIT = 80

# The "What" filter: each kind belongs to one group; an action no kind names is "other".
GROUPS: dict[str, str] = {
    "orders": "Orders",
    "licenses": "Licenses and users",
    "access": "Sign-ins and Manage Company",
    "invoices": "Invoices and payments",
    "subscriptions": "Subscriptions",
    "settings": "Settings and billing details",
    "companies": "Companies",
    "emails": "E-mails",
    "other": "Anything else",
}


class Detail:
    """An entry's detail and company, read leniently: a missing or odd value is empty."""

    def __init__(self, action: str, detail: Any, company: str | None) -> None:
        if isinstance(detail, str):
            try:
                detail = json.loads(detail)
            except ValueError:
                detail = {}
        self.action = action
        self.raw: Mapping[str, Any] = detail if isinstance(detail, Mapping) else {}
        self.company = company or "a company no longer there"

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        return "" if value is None or isinstance(value, (dict, list)) else str(value)

    def number(self, key: str) -> int | None:
        value = self.raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def need(self, value: str | int | None) -> Any:
        """A value the sentence cannot do without: absent, the entry reads generically."""
        if value is None or value == "":
            raise LookupError("the entry's detail lacks what its sentence says")
        return value

    def quoted(self, key: str) -> str:
        """User text in quotes, cut at QUOTE_LIMIT characters: "'Please order through…'"."""
        value = " ".join(self.text(key).split())
        if not value:
            return ""
        return "'" + (value if len(value) <= QUOTE_LIMIT else value[: QUOTE_LIMIT - 1].rstrip() + "…") + "'"

    def money(self, key: str) -> str:
        cents = self.number(key)
        return format_money(cents, self.text("currency")) if cents is not None else ""

    def day(self, key: str) -> str:
        try:
            return f"{datetime.fromisoformat(self.text(key)):%d %b %Y}"
        except ValueError:
            return ""

    def invoice(self) -> str:
        """ "invoice INV-00042", or by its id for entries that name no number."""
        number, invoice_id = self.text("number"), self.number("invoice")
        return f"invoice {number}" if number else f"invoice #{invoice_id}" if invoice_id else "an invoice"


def plural(n: int | None, one: str, many: str | None = None) -> str:
    n = n or 0
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _with(text: str, joiner: str = ": ") -> str:
    """ ": 'why'" after a sentence when there is something to add; nothing otherwise."""
    return joiner + text if text else ""


Say = Callable[[Detail], str]


@dataclass(frozen=True)
class Kind:
    action: str
    group: str
    say: Say


class Registry:
    """Every kind of audit entry the portal writes, by action; `prefix` kinds
    cover a family of actions (user.create_manager, user.create_learner, …)."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}
        self.prefixes: dict[str, Kind] = {}

    def add(self, action: str, group: str, say: Say) -> None:
        assert group in GROUPS and action not in self.kinds, action
        self.kinds[action] = Kind(action, group, say)

    def add_prefix(self, prefix: str, group: str, say: Say) -> None:
        assert group in GROUPS and prefix not in self.prefixes, prefix
        self.prefixes[prefix] = Kind(prefix, group, say)

    def kind(self, action: str) -> Kind | None:
        if action in self.kinds:
            return self.kinds[action]
        return next((kind for prefix, kind in self.prefixes.items() if action.startswith(prefix)), None)

    def __iter__(self) -> Iterator[Kind]:
        return iter([*self.kinds.values(), *self.prefixes.values()])

    def group_of(self, action: str) -> str:
        kind = self.kind(action)
        return kind.group if kind else "other"

    def sentence(self, action: str, detail: Any, company: str | None) -> str:
        d = Detail(action, detail, company)
        kind = self.kind(action)
        if kind is not None:
            try:
                said = kind.say(d)
            except Exception:  # an entry older or odder than its sentence: say it plainly
                said = ""
            if said:
                return said
        return generic(d)


def generic(d: Detail) -> str:
    """ "refund.issue" → "Refund issue for Brightpath Dental"."""
    words = " ".join(d.action.replace(".", " ").replace("_", " ").split()) or "Something"
    return f"{words[0].upper()}{words[1:]} for {d.company}"


SENTENCES = Registry()
add = SENTENCES.add

PRODUCTS = {"sat-premium": "Premium", "sat-trial": "Free trial"}
ROLES = {
    "manager": "a manager",
    "read_only": "a read-only manager",
    "learner": "a learner",
    "partner_admin": "a partner admin",
    "account_manager": "an account manager",
    "billing": "billing staff",
}
SIGN_IN_METHODS = {
    "password": "with a password",
    "passkey": "with a passkey",
    "totp": "with a password and an authenticator code",
    "recovery_code": "with a password and a recovery code",
    "sso": "with single sign-on",
}
PAYMENT_METHODS = {"card": "by card", "bank_transfer": "by bank transfer", "check": "by check", "cash": "in cash"}


# --- Orders ------------------------------------------------------------------


def _order(d: Detail, verb: str, preposition: str = "for") -> str:
    seats = d.number("seats") if d.number("seats") is not None else d.number("quantity")
    order = d.number("order")
    what = f"an order of {plural(seats, 'seat')}" if seats is not None else f"order #{order}" if order else "an order"
    return f"{verb} {what} {preposition} {d.company}"


def _request(d: Detail) -> str:
    product = PRODUCTS.get(d.text("product"), d.text("product"))
    said = (
        f"Requested {plural(d.need(d.number('quantity')), (product + ' ' if product else '') + 'seat')} for {d.company}"
    )
    if d.raw.get("renews_batch"):
        said += ", to renew a batch"
    if d.day("ends_with_term"):
        said += f", ending with the current term on {d.day('ends_with_term')}"
    return said


def _assign(d: Detail) -> str:
    said = _order(d, "Assigned", "to")
    if d.raw.get("renews_batch"):
        said += ", renewing a batch"
    if d.day("ends_with_term"):
        said += f", ending with the current term on {d.day('ends_with_term')}"
    return said


add("order.request", "orders", _request)
add("order.assign", "orders", _assign)
add("order.decline", "orders", lambda d: _order(d, "Declined") + _with(d.quoted("reason")))
add("order.cancel", "orders", lambda d: _order(d, "Withdrew") + _with(d.quoted("reason")))
add(
    "batch.auto_renew",
    "orders",
    lambda d: (
        f"Renewed a batch of {plural(d.need(d.number('seats')), 'seat')} of {d.company} automatically"
        if d.text("mode") == "renew"
        else f"Placed a renewal order of {plural(d.need(d.number('seats')), 'seat')} for {d.company}, for approval"
    ),
)

# --- Licenses and users ------------------------------------------------------


def _allocate(d: Detail) -> str:
    renewed, selected = d.need(d.number("renewed")), d.number("selected")
    if selected is not None and renewed is not None and selected > renewed:
        return f"Gave seats to {renewed:,} of {plural(selected, 'selected user')} of {d.company}"
    return f"Gave seats to {plural(renewed, 'user')} of {d.company}"


def _import(d: Detail) -> str:
    said = f"Renewed {plural(d.need(d.number('renewed')), 'user')} of {d.company}"
    if d.quoted("file"):
        said += f" from the file {d.quoted('file')}"
    if d.number("new_learners"):
        said += f", adding {plural(d.number('new_learners'), 'new learner')}"
    if d.number("not_renewed"):
        said += f"; {plural(d.number('not_renewed'), 'row')} not renewed"
    return said


def _auto_renewal(d: Detail) -> str:
    if d.text("mode") == "off":
        return f"Turned automatic renewal off for {d.company}"
    quantity = "with the number of users holding seats" if d.text("quantity") == "holders" else "with the same quantity"
    before = plural(d.need(d.number("days_before")), "day")
    if d.text("mode") == "approve":
        return f"Set {d.company} to place renewal orders for approval {before} before a batch ends, {quantity}"
    return f"Set {d.company} to renew automatically {before} before a batch ends, {quantity}"


def _align(d: Detail) -> str:
    batches = d.raw.get("batches")
    count = len(batches) if isinstance(batches, list) else 0
    said = f"Moved the end of {plural(count, 'batch', 'batches')} of {d.company} to {d.need(d.day('target'))}"
    return said + (f" ({d.money('total_cents')})" if d.money("total_cents") else "")


add("licences.allocate", "licenses", _allocate)
add("imports.apply", "licenses", _import)
add("auto_renewal.set", "licenses", _auto_renewal)
add("batches.align", "licenses", _align)
add(
    "user.deactivate",
    "licenses",
    lambda d: (
        f"Deactivated {d.text('user') or 'a user'} of {d.company}"
        + (f", freeing {plural(d.number('freed'), 'seat')}" if d.number("freed") else "")
    ),
)
add(
    "user.change_role",
    "access",
    lambda d: (
        f"Made {d.need(d.text('user'))} of {d.company} "
        + d.need(ROLES.get(d.text("role") or "", d.text("role")))
        + (f" (was {ROLES.get(d.text('was') or '', d.text('was'))})" if d.text("was") else "")
    ),
)
SENTENCES.add_prefix(
    "user.create_",
    "licenses",
    lambda d: (
        f"Added {d.text('email') or 'a user'} to {d.company} as "
        + ROLES.get(d.action.removeprefix("user.create_"), "a user")
    ),
)

# --- Sign-ins and Manage Company -----------------------------------------------


def _sign_in(d: Detail) -> str:
    method = d.text("method")
    said = "Signed in" + (" " + SIGN_IN_METHODS.get(method, f"with {method}") if method else "")
    address = d.text("ip") or d.text("address")
    return said + (f" from {address}" if address else "")


add("sign_in", "access", _sign_in)
add("manage.enter", "access", lambda d: f"Entered {d.company} with Manage Company")
add("manage.exit", "access", lambda d: f"Left {d.company} (Exit from Manage Company)")

# --- Invoices and payments -----------------------------------------------------


def _amount(d: Detail) -> str:
    return cast("str", d.need(d.money("amount_cents") or d.money("total_cents")))


def _issue(d: Detail) -> str:
    kind = "renewal invoice" if d.text("kind") == "renewal" else "invoice"
    number = d.text("number")
    return f"Issued {kind}{' ' + number if number else ''} of {d.need(d.money('total_cents'))} to {d.company}"


def _paid(d: Detail) -> str:
    method = PAYMENT_METHODS.get(d.text("method"), d.text("method").replace("_", " "))
    said = f"Recorded {d.invoice()} of {d.company} as paid"
    amount = d.money("amount_cents") or d.money("total_cents")
    return said + (f" {method}" if method else "") + (f" ({amount})" if amount else "")


add("invoice.issue", "invoices", _issue)
add("invoice.paid", "invoices", _paid)
add(
    "invoice.void",
    "invoices",
    lambda d: (
        f"Voided {d.invoice()} of {d.company}"
        + (f" ({d.money('total_cents')})" if d.money("total_cents") else "")
        + _with(d.quoted("reason"))
    ),
)
add("invoice.charged", "invoices", lambda d: f"Charged {_amount(d)} to the card of {d.company} for {d.invoice()}")
add(
    "invoice.charge_declined",
    "invoices",
    lambda d: (
        f"The card of {d.company} was declined for {d.invoice()} ({_amount(d)})" + _with(d.quoted("decline_reason"))
    ),
)
add(
    "invoice.charge_confirmed",
    "invoices",
    lambda d: f"Confirmed the card payment of {_amount(d)} for {d.invoice()} of {d.company}",
)
add(
    "invoice.charge_failed",
    "invoices",
    lambda d: f"A card payment for {d.invoice()} of {d.company} failed" + _with(d.quoted("decline_reason")),
)
add(
    "invoice.charged_not_issued",
    "invoices",
    lambda d: f"Took {_amount(d)} by card for {d.invoice()} of {d.company} after it was settled otherwise: refund it",
)
add(
    "invoice.refunded",
    "invoices",
    lambda d: f"Refunded {d.money('amount_refunded_cents') or 'part'} of {d.invoice()} of {d.company}",
)
add(
    "invoice.disputed",
    "invoices",
    lambda d: f"The card payment of {d.invoice()} of {d.company} is disputed" + _with(d.quoted("reason")),
)

# --- Subscriptions -------------------------------------------------------------


def _users(d: Detail, extra: str = "extra_users", read_only: str = "read_only_users") -> str:
    parts = []
    if d.number(extra):
        parts.append(plural(d.number(extra), "extra user"))
    if d.number(read_only):
        parts.append(plural(d.number(read_only), "read-only user"))
    return ", ".join(parts)


def _buy(d: Detail) -> str:
    tier = d.need(d.text("tier")).capitalize()
    how = "paid online" if d.text("method") == "online" else "paid by invoice"
    said = f"Bought a {tier} subscription for {d.company}"
    extras = ", ".join(part for part in (_users(d), d.money("total_cents"), how) if part)
    return said + f" ({extras})"


def _change(d: Detail) -> str:
    said = f"Changed the subscription of {d.company} to {d.need(d.text('tier')).capitalize()}"
    said += _with(_users(d), ", with ")
    cents = d.number("total_cents")
    return said + (f" ({d.money('total_cents')})" if cents else "")


def _ends(d: Detail) -> str:
    return f"; it ends on {d.day('ends_at')}" if d.day("ends_at") else ""


def _provision(d: Detail) -> str:
    said = f"Set up the licenses {d.company} paid for"
    if d.number("seats") is not None:
        said += f": {plural(d.number('seats'), 'seat')}"
        if d.day("term_end"):
            said += f" until {d.day('term_end')}"
    return said + (f" ({d.money('total_cents')})" if d.money("total_cents") else "")


add("subscription.buy", "subscriptions", _buy)
add("subscription.change", "subscriptions", _change)
add("subscription.cancel", "subscriptions", lambda d: f"Cancelled the subscription of {d.company}" + _ends(d))
add(
    "subscription.confirm_cancellation",
    "subscriptions",
    lambda d: f"Confirmed the cancellation of the subscription of {d.company}" + _ends(d),
)
add("subscription.request_cancellation", "subscriptions", lambda d: f"Asked to cancel the subscription of {d.company}")
add("subscription.undo_cancel", "subscriptions", lambda d: f"Undid the cancellation of the subscription of {d.company}")
add(
    "subscription.end_unpaid",
    "subscriptions",
    lambda d: f"Ended the unpaid subscription of {d.company}" + _with(d.quoted("reason")),
)
add("subscription.end", "subscriptions", lambda d: f"The subscription of {d.company} ended")
add(
    "subscription.lapse",
    "subscriptions",
    lambda d: (
        f"The subscription of {d.company} lapsed unpaid" + (f" on {d.day('term_end')}" if d.day("term_end") else "")
    ),
)
add("subscription.provision", "subscriptions", _provision)

# --- Settings and billing details ----------------------------------------------


def _profile(d: Detail) -> str:
    changes = []
    if d.text("currency") != d.text("old_currency"):
        changes.append(f"currency {d.text('old_currency')} → {d.text('currency')}")
    rate, old_rate = d.number("tax_rate_bp"), d.number("old_tax_rate_bp")
    if rate is not None and old_rate is not None and rate != old_rate:
        changes.append(f"tax {format_rate(old_rate)} → {format_rate(rate)}")
    if "assign_unpaid" in d.raw and d.raw.get("assign_unpaid") != d.raw.get("old_assign_unpaid"):
        changes.append(
            "licenses assigned before payment" if d.raw.get("assign_unpaid") else "licenses assigned once paid"
        )
    return f"Changed the billing settings of {d.company}" + _with(", ".join(changes))


def _price(d: Detail) -> str:
    said = f"Set the price of {d.text('code') or 'an item'} to {d.need(d.money('price_cents'))}"
    old = d.number("old_price_cents")
    if old is not None and old != d.number("price_cents"):
        said += f" (was {format_money(old, d.text('currency'))})"
    return said + ("" if d.raw.get("active", True) else "; not for sale")


def _card(d: Detail) -> str:
    brand, last4 = d.text("brand").capitalize(), d.need(d.text("last4"))
    return f"{brand} card ending {last4}" if brand else f"card ending {last4}"


add("billing.address.save", "settings", lambda d: f"Changed the billing address of {d.company}")
add("billing.card.save", "settings", lambda d: f"Saved the {_card(d)} for {d.company}")
add(
    "billing.online_account.create",
    "settings",
    lambda d: f"Created an online billing account for {d.company} with the {_card(d)}",
)
add("billing.profile.save", "settings", _profile)
add("billing.catalogue_item.save", "settings", _price)
add(
    "partner_settings.save",
    "settings",
    lambda d: (
        f"Set the largest order to {d.number('max_order_quantity'):,} and the free-seat alert to "
        f"{d.number('low_seat_threshold'):,} for {d.company}"
    ),
)
add(
    "audit.retention.save",
    "settings",
    lambda d: f"Set {d.company} to keep the audit log for {plural(d.need(d.number('months')), 'month')}",
)
add(
    "api_key.create",
    "settings",
    lambda d: (
        f"Created the API key {d.need(d.quoted('name'))}" + (f" ({d.text('prefix')}…)" if d.text("prefix") else "")
    ),
)
add("api_key.revoke", "settings", lambda d: f"Revoked API key #{d.need(d.number('key'))}")
add(
    "profile.reminders",
    "settings",
    lambda d: "Turned their own expiry reminders " + ("on" if d.raw.get("reminders") else "off"),
)
add(
    "profile.digest",
    "settings",
    lambda d: "Turned their own weekly digest " + ("on" if d.raw.get("digest") else "off"),
)

# --- Companies and e-mails -----------------------------------------------------

_KINDS = {"partner": "partner", "sub_partner": "sub-partner", "customer": "customer"}

add(
    "company.create",
    "companies",
    lambda d: f"Created the {_KINDS.get(d.text('kind'), 'company')} {d.text('name') or d.company}",
)
add(
    "partner.create",
    "companies",
    lambda d: (
        f"Created the partner {d.text('name') or d.company}"
        + (f" with its first manager {d.text('manager_email')}" if d.text("manager_email") else "")
        + (" from the command line" if d.text("by") == "command line" else "")
    ),
)
add("email.resend", "emails", lambda d: f"Sent an e-mail again to {d.text('to') or 'its recipient'}")

# --- Refunds, sign-in security, integrations, bulk actions ---------------------------

add(
    "invoice.refund",
    "invoices",
    lambda d: (
        f"Refunded {d.need(d.money('amount_cents'))} of invoice {d.text('number') or '#' + d.text('invoice')} "
        f"to {d.company}" + (f": {d.quoted('reason')}" if d.text("reason") else "")
    ),
)
add(
    "credit_note.issue",
    "invoices",
    lambda d: (
        f"Issued credit note {d.need(d.text('number'))} for {d.money('total_cents') or 'an amount'} against invoice "
        f"{d.text('invoice_number') or '#' + d.text('invoice')} of {d.company}"
    ),
)
add(
    "refund.failed",
    "invoices",
    lambda d: f"A refund of {d.need(d.money('amount_cents'))} for {d.company} was refused by the card processor",
)
add(
    "refund.processor_away",
    "invoices",
    lambda d: f"Could not reach the card processor for a refund to {d.company}; it is asked again",
)
add("billing.seller_details.save", "settings", lambda d: f"Changed the seller details on {d.company}'s invoices")
add("partner_settings.save_emails", "settings", lambda d: f"Changed the e-mail settings of {d.company}")
add(
    "partner_settings.two_factor",
    "settings",
    lambda d: (
        f"Set two-factor sign-in for {d.company}: "
        + ("required" if d.raw.get("staff") else "not required")
        + " of its staff, "
        + ("required" if d.raw.get("customers") else "not required")
        + " of its customers' managers"
    ),
)
add("user.change_password", "access", lambda d: "Changed their own password")
add(
    "user.reset_second_factor",
    "access",
    lambda d: f"Reset the second factor of {d.need(d.text('email'))} at {d.company}",
)
add("two_factor.enrol_authenticator", "access", lambda d: "Set up an authenticator app for signing in")
add(
    "sso.save",
    "settings",
    lambda d: (
        f"Set single sign-on for {d.company} at {d.need(d.text('issuer'))}"
        + (f" for {d.text('domains')}" if d.text("domains") else "")
        + ("; only way in for its staff" if d.raw.get("sso_only_for_staff") else "")
        + ("; makes managers on first sign-in" if d.raw.get("create_on_first_sign_in") else "")
        + ("; trusts the provider's multi-factor sign-in" if d.raw.get("trust_provider_mfa") else "")
    ),
)
add("sso.remove", "settings", lambda d: f"Turned single sign-on off for {d.company}")
add("two_factor.remove_authenticator", "access", lambda d: "Removed their authenticator app")
add("two_factor.new_recovery_codes", "access", lambda d: "Made new recovery codes (the old ones no longer work)")
add("two_factor.add_passkey", "access", lambda d: "Added a passkey for signing in")
add("two_factor.remove_passkey", "access", lambda d: "Removed a passkey")
add("user.update", "licenses", lambda d: f"Updated {d.need(d.text('user'))} at {d.company} through SCIM")
add("user.scim_delete", "licenses", lambda d: f"Removed {d.need(d.text('user'))} at {d.company} through SCIM")
add("user.reactivate", "licenses", lambda d: f"Made user #{d.need(d.text('user'))} of {d.company} active again")
add(
    "scim_token.create",
    "settings",
    lambda d: f"Created the SCIM token {d.need(d.quoted('name'))} for {d.company}",
)
add("scim_token.revoke", "settings", lambda d: f"Revoked a SCIM token of {d.company}")
add("webhook.create", "settings", lambda d: f"Added the webhook endpoint {d.need(d.text('url'))}")
add("webhook.update", "settings", lambda d: f"Changed webhook endpoint #{d.need(d.text('endpoint'))}")
add(
    "webhook.rotate_secret",
    "settings",
    lambda d: f"Made a new signing secret for webhook endpoint #{d.need(d.text('endpoint'))}",
)
add("webhook.delete", "settings", lambda d: f"Removed the webhook endpoint {d.need(d.text('url'))}")
add("webhook.resend", "settings", lambda d: f"Resent a message to webhook endpoint #{d.need(d.text('endpoint'))}")
add(
    "webhook.disable",
    "settings",
    lambda d: (
        f"Switched off the webhook endpoint {d.need(d.text('url'))}: "
        + ("it answered 410 Gone" if d.raw.get("gone") else "it failed for 3 days")
    ),
)
add(
    "api.idempotency",
    "orders",
    lambda d: (
        {"assign": "Assigned an order", "decline": "Declined an order"}.get(d.text("request"), "Ordered")
        + f" through the API with Idempotency-Key {d.need(d.quoted('key'))}"
    ),
)
add("bulk.start", "orders", lambda d: f"Started a bulk action: {d.need(d.text('said'))}")
SENTENCES.add_prefix(
    "bulk.",
    "orders",
    lambda d: (
        "Bulk action"
        + (f" ({d.action.removeprefix('bulk.').replace('_', ' ')})" if d.action != "bulk." else "")
        + f" for {d.company}: "
        + ("done" if d.text("status") == "done" else "not done")
        + (f", {d.text('outcome')}" if d.text("outcome") else "")
    ),
)
# A partner's words and brand (portal/domain/branding/).
add(
    "branding.template_save",
    "settings",
    lambda d: f"Wrote {d.company}'s own words for the e-mail {d.need(d.quoted('label'))}",
)
add(
    "branding.template_reset",
    "settings",
    lambda d: f"Put back the standard words of the e-mail {d.need(d.quoted('label'))} for {d.company}",
)
add(
    "branding.template_test",
    "settings",
    lambda d: f"Sent a test of the e-mail {d.need(d.quoted('label'))} of {d.company}",
)
add(
    "branding.brand_save",
    "settings",
    lambda d: (
        f"Set the brand of {d.company}: color {d.text('colour') or 'none'}, "
        + ("a new logo" if d.text("logo") == "changed" and d.raw.get("has_logo") else "")
        + ("no logo" if d.text("logo") == "changed" and not d.raw.get("has_logo") else "")
        + ("logo kept" if d.text("logo") != "changed" else "")
    ),
)
