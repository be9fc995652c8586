"""What a billing action did, in words and amounts with their currency, for the
flash message of the page that follows it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal.domain.billing.invoices import format_invoice_number
from portal.domain.billing.money import format_money
from portal.domain.billing.quotes import format_day
from portal.domain.billing.renewal.schedule import Unpaid
from portal.domain.billing.renewal.voiding import PurchaseEnds
from portal.web.flash import Kind


def _day(value: Any) -> str:
    return format_day(value) if value else ""


def _total(invoice: Mapping[str, Any]) -> str:
    return format_money(invoice["total_cents"], invoice["currency"])


def _number(invoice: Mapping[str, Any]) -> str:
    return format_invoice_number(invoice["number"]) if invoice.get("number") else "a draft invoice"


def _users(n: int) -> str:
    return f"{n:,} standard user{'' if n == 1 else 's'}"


_STATE = {"paid": "paid", "issued": "awaiting payment", "void": "void"}


def _repeated(result: Mapping[str, Any]) -> str:
    """The same confirmation sent again: what the first one did, as it stands now."""
    invoice = result.get("invoice")
    if not invoice:
        return "This was confirmed already; nothing more was done."
    state = _STATE.get(invoice["status"], invoice["status"])
    return (
        "This was confirmed already; nothing more was done. "
        f"Invoice {_number(invoice)} for {_total(invoice)} is {state}."
    )


def bought(result: Mapping[str, Any]) -> tuple[str, Kind]:
    if result.get("repeat"):
        return _repeated(result), "ok"
    subscription, invoice, charge = result["subscription"], result["invoice"], result.get("charge")
    if charge is not None and not charge.ok:
        return (
            f"Your card was not charged: {charge.decline_reason} Invoice {_number(invoice)} for {_total(invoice)} "
            "stays unpaid and no licenses were added. Change the card under Payment method, or ask for an invoice.",
            "error",
        )
    batch = result.get("batch")
    if subscription["method"] == "online":
        said = f"Paid {_total(invoice)} by card (invoice {_number(invoice)})."
    else:
        said = f"Invoice {_number(invoice)} for {_total(invoice)} was issued, due {_day(invoice.get('due_at'))}."
    if batch:
        said += f" {batch['seats']:,} licenses are ready to allocate, until {_day(batch['ends_at'])}."
    elif subscription["method"] == "invoice":
        said += " The licenses are assigned once it is paid."
    return said, "ok"


def changed(result: Mapping[str, Any]) -> tuple[str, Kind]:
    if result.get("repeat"):
        return _repeated(result), "ok"
    invoice, charge = result.get("invoice"), result.get("charge")
    if charge is not None and not charge.ok:
        return (
            f"Your card was not charged: {charge.decline_reason} Nothing was changed; "
            f"invoice {_number(invoice or {})} stays unpaid.",
            "error",
        )
    subscription = result["subscription"]
    said = "Subscription changed."
    if invoice:
        paid = invoice["status"] == "paid"
        said = (
            f"Charged {_total(invoice)} pro rata (invoice {_number(invoice)})."
            if paid
            else f"Invoice {_number(invoice)} for {_total(invoice)} was issued for the change, pro rata."
        )
    if subscription.get("next_extra_users") is not None and subscription.get("term_end"):
        said += f" From {_day(subscription['term_end'])}, fewer users apply."
    renewal = result.get("renewal_invoice")
    if renewal:
        said += (
            f" The renewal invoice was voided and reissued for the next term as changed: "
            f"{_number(renewal)} for {_total(renewal)}."
        )
    return said, "ok"


def _read_only_users(n: int) -> str:
    return f"{n:,} read-only user{'' if n == 1 else 's'}"


def users_added(result: Mapping[str, Any]) -> tuple[str, Kind]:
    """ "Add users" done: how many, what it cost, and when the added licenses come."""
    if result.get("repeat"):
        return _repeated(result), "ok"
    invoice, charge = result.get("invoice") or {}, result.get("charge")
    if charge is not None and not charge.ok:
        return (
            f"Your card was not charged: {charge.decline_reason} No users were added; "
            f"invoice {_number(invoice)} stays unpaid.",
            "error",
        )
    standard, read_only = result["added"]
    what = " and ".join([_users(standard)] * bool(standard) + [_read_only_users(read_only)] * bool(read_only))
    if invoice.get("status") == "paid":
        said = f"Added {what}: charged {_total(invoice)} pro rata (invoice {_number(invoice)})."
    else:
        said = f"Invoice {_number(invoice)} for {_total(invoice)} was issued for {what}, pro rata."
    batch = result.get("batch")
    if batch:
        said += f" {batch['seats']:,} more licenses are ready to allocate, until {_day(batch['ends_at'])}."
    elif invoice.get("status") != "paid":
        said += " They are added once it is paid."
    return said, "ok"


def account_created(account: Mapping[str, Any]) -> str:
    return (
        f"Online billing account saved: {account.get('card_brand') or 'card'} ending {account.get('card_last4')}. "
        "Renewals are paid online from now on."
    )


def card_saved(account: Mapping[str, Any]) -> str:
    return f"Card saved: {account.get('card_brand') or 'card'} ending {account.get('card_last4')}."


def _days(moments: tuple[Any, ...]) -> str:
    days = [_day(m) for m in moments]
    return days[0] if len(days) == 1 else ", ".join(days[:-1]) + " and " + days[-1]


def void_effect(unpaid: Unpaid | PurchaseEnds | None) -> str:
    """What voiding an invoice does to its subscription, after "Nothing is issued in its
    place;" on the invoice page (before) and in the flash (after)."""
    if unpaid is None:
        return "its subscription stays as it is."
    if isinstance(unpaid, PurchaseEnds):
        return (
            "its order in Requested Orders is declined and the subscription, never paid, ends: "
            f"{unpaid.company_name} can buy again."
        )
    if unpaid.method == "online":
        again = f" (again on {_days(unpaid.retries)})" if unpaid.retries else ""
        return (
            "the subscription pays online, and the renewal job takes a void renewal invoice as a declined card: "
            f"nothing is charged, the managers are e-mailed each time it is tried{again}, and the subscription "
            f"lapses on {_day(unpaid.lapses_at)}. Its licenses end on {_day(unpaid.licences_end)}. "
            "To have the card charged instead, use Void and reissue."
        )
    return (
        "no other renewal invoice or reminder is sent for this term: the subscription lapses at its end, "
        f"{_day(unpaid.lapses_at)}, and its licenses end with it. "
        "To bill the renewal differently, use Void and reissue."
    )
