"""Card payments behind one small interface, and the built-in test processor.

The processor in use is chosen by settings and built once at start-up by the web
app, the worker and the CLI (portal/services.py); every domain function that asks
a processor something takes it as its `processor` parameter. TestProcessor (the
default, no network) answers like a processor's test mode by card number
(TEST_CARDS); StripeProcessor (portal/stripe_processor.py) is Stripe.

The card never reaches the portal's server: the browser hands the card to the
processor (Stripe Elements, or the test processor's own card page) and the portal
receives a payment-method id, which `keep_card` turns into the card kept (token,
brand, last 4 digits and expiry; never the number)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from portal import db
from portal.domain import audit
from portal.domain.billing import invoices, refunds
from portal.domain.errors import ValidationFailed
from portal.domain.numbers import is_ascii_digits
from portal.tables.billing import Charge, Invoice, InvoiceStatus

ACCEPTED = "4242424242424242"
DECLINED = "4000000000000002"
# Saved without complaint, but every charge on it is declined (renewal failures).
CHARGES_DECLINED = "4000000000000341"
TEST_CARDS = {
    ACCEPTED: "Accepted",
    DECLINED: "Declined at once",
    CHARGES_DECLINED: "Saved; every charge declined",
}
CARD_DECLINED = "Your card was declined."
NOT_VALID = "That card number is not valid."
TEST_ONLY = "Test mode accepts only the test cards."
NO_PAYMENT_METHOD = "Enter the card again: the card form did not hand over a card."
NEEDS_AUTHENTICATION = "Your bank asks you to confirm this payment (3-D Secure)."
IN_PROGRESS = "A payment of this invoice is already in progress."
# A charge row left "pending" this long belongs to a worker that died while
# asking the processor: the next try asks again with the same key, which a
# processor answers without charging twice.
PENDING_LEASE = invoices.PAYMENT_LEASE


@dataclass(frozen=True)
class CardDetails:
    number: str
    exp_month: int
    exp_year: int
    cvc: str

    def __repr__(self) -> str:
        # Never the number or the code in a log or a traceback.
        last4 = digits_of(self.number)[-4:]
        return f"CardDetails(number='…{last4}', exp_month={self.exp_month}, exp_year={self.exp_year})"


@dataclass(frozen=True)
class SavedCard:
    token: str
    brand: str
    last4: str
    expires: str  # "2028-04"


@dataclass(frozen=True)
class ChargeResult:
    ok: bool
    reference: str | None
    decline_reason: str | None
    # Another worker is asking the processor for this same attempt right now.
    pending: bool = False
    # The bank wants the cardholder to confirm (3-D Secure): the processor's id of
    # the payment to confirm in the browser; the charge is declined until then.
    requires_action: str | None = None


@dataclass(frozen=True)
class RefundResult:
    ok: bool
    reference: str | None  # the processor's id of the refund
    failure: str | None = None


class CardProcessor(Protocol):
    name: str  # "test" | "stripe"
    test_mode: bool

    async def card_setup(self) -> str | None:
        """What the browser's card form needs to hand a card to the processor (Stripe: a
        SetupIntent's client secret), or None when it needs nothing (the test processor)."""
        ...

    async def keep_card(
        self, payment_method: str, *, previous_token: str | None, email: str, name: str, now: datetime
    ) -> SavedCard:
        """The card the browser handed to the processor (its payment-method id), kept for
        later charges without the cardholder (`previous_token`: the card it replaces, whose
        processor customer is reused); ValidationFailed({"card": …}) if refused."""
        ...

    async def charge(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> ChargeResult:
        """Charge once per key: the same key again answers as the first time and charges nothing more."""
        ...

    async def confirmation(self, reference: str) -> tuple[str, str | None]:
        """A payment that required action (ChargeResult.requires_action): its status now
        ("succeeded" once the cardholder confirmed it) and what the browser needs to
        confirm it (Stripe: the PaymentIntent's client secret)."""
        ...

    async def refund(
        self, payment_reference: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        """Give back `amount_cents` of the payment `payment_reference` (a charge's
        processor_ref) to its card, once per key: the same key again answers as the
        first time and refunds nothing more. Raises when the processor cannot be reached."""
        ...


def digits_of(number: str) -> str:
    # ASCII's only: str.isdigit() also takes "²" and "٣", which int() then refuses or reads.
    return "".join(ch for ch in number if is_ascii_digits(ch))


def luhn_ok(digits: str) -> bool:
    if not is_ascii_digits(digits) or not 12 <= len(digits) <= 19:
        return False
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def brand_of(digits: str) -> str:
    if digits.startswith("4"):
        return "Visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or "2221" <= digits[:4] <= "2720":
        return "Mastercard"
    if digits[:2] in {"34", "37"}:
        return "American Express"
    return "Card"


def check_card(card: CardDetails, now: datetime | None = None) -> str:
    """The card's digits, or ValidationFailed naming each bad field."""
    errors: dict[str, str] = {}
    digits = digits_of(card.number)
    # Spaces and dashes as people type them; anything else is not a card number.
    if any(not (is_ascii_digits(ch) or ch in " -") for ch in card.number) or not luhn_ok(digits):
        errors["card"] = NOT_VALID
    if not 1 <= card.exp_month <= 12:
        errors["exp_month"] = "Enter the expiry month, 1 to 12."
    if not 2000 <= card.exp_year <= 2100:
        errors["exp_year"] = "Enter the expiry year, like 2030."
    elif now is not None and 1 <= card.exp_month <= 12 and (card.exp_year, card.exp_month) < (now.year, now.month):
        errors["exp_year"] = "This card has expired."
    if not (is_ascii_digits(card.cvc) and len(card.cvc) in (3, 4)):
        errors["cvc"] = "Enter the 3 or 4 digits of the security code."
    if errors:
        raise ValidationFailed(errors)
    return digits


_BRAND_CODES = {"Visa": "v", "Mastercard": "m", "American Express": "a", "Card": "c"}
_TEST_TOKEN = re.compile(r"tok_test_(ok|decline)_([vmac])(\d{4})(\d{4})(\d{2})_[0-9a-f]{24}")


class TestProcessor:
    """A processor's test mode: TEST_CARDS decide the answer. Its card page (portal/
    web/test_processor.py) takes the card and `save_card` hands back a token that
    names how its charges end and what a person recognises of the card, so web
    processes and workers answer alike with nothing shared; a charge's reference
    comes from its key, so the same key answers the same. `calls` counts what was
    asked of it (tests)."""

    __test__ = False  # not a pytest class
    name = "test"
    test_mode = True

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.refunds: list[str] = []

    async def save_card(self, card: CardDetails, *, now: datetime | None = None) -> SavedCard:
        digits = check_card(card, now)
        if digits == DECLINED:
            raise ValidationFailed({"card": CARD_DECLINED})
        if digits not in (ACCEPTED, CHARGES_DECLINED):
            raise ValidationFailed({"card": TEST_ONLY})
        outcome = "ok" if digits == ACCEPTED else "decline"
        brand = brand_of(digits)
        return SavedCard(
            token=f"tok_test_{outcome}_{_BRAND_CODES[brand]}{digits[-4:]}{card.exp_year:04d}{card.exp_month:02d}_"
            f"{secrets.token_hex(12)}",
            brand=brand,
            last4=digits[-4:],
            expires=f"{card.exp_year:04d}-{card.exp_month:02d}",
        )

    async def card_setup(self) -> str | None:
        return None

    async def keep_card(
        self, payment_method: str, *, previous_token: str | None, email: str, name: str, now: datetime
    ) -> SavedCard:
        match = _TEST_TOKEN.fullmatch(payment_method)
        if match is None:
            raise ValidationFailed({"card": NO_PAYMENT_METHOD})
        _, code, last4, year, month = match.groups()
        if (int(year), int(month)) < (now.year, now.month):
            raise ValidationFailed({"card": "This card has expired."})
        brand = next(b for b, c in _BRAND_CODES.items() if c == code)
        return SavedCard(token=payment_method, brand=brand, last4=last4, expires=f"{year}-{month}")

    async def charge(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> ChargeResult:
        self.calls.append(idempotency_key)
        if amount_cents < 0 or not token.startswith("tok_test_"):
            return ChargeResult(ok=False, reference=None, decline_reason=CARD_DECLINED)
        if token.startswith("tok_test_decline_"):
            return ChargeResult(ok=False, reference=None, decline_reason=CARD_DECLINED)
        reference = "ch_test_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        return ChargeResult(ok=True, reference=reference, decline_reason=None)

    async def confirmation(self, reference: str) -> tuple[str, str | None]:
        # Its charges never wait for the cardholder.
        return "requires_payment_method", None

    async def refund(
        self, payment_reference: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        self.refunds.append(idempotency_key)
        if amount_cents <= 0 or not payment_reference.startswith("ch_test_"):
            return RefundResult(ok=False, reference=None, failure="Not a payment of the test processor.")
        return RefundResult(ok=True, reference="re_test_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24])


def charge_key(invoice_id: int, attempt: int) -> str:
    return f"{invoice_id}:{attempt}"


def _result_of(row: dict[str, Any]) -> ChargeResult:
    return ChargeResult(
        ok=row["status"] == "succeeded", reference=row["processor_ref"], decline_reason=row["decline_reason"]
    )


def next_attempt(charges: list[dict[str, Any]]) -> int:
    """The attempt a new try of an invoice is: its open (pending) one if it has one (at
    most one is ever open), else one more than the last. The rule of "Pay Online" and
    of the renewal job alike, applied under the invoice's row lock."""
    open_ = [c["attempt"] for c in charges if c["status"] == "pending"]
    if open_:
        return cast("int", open_[0])
    return max((c["attempt"] for c in charges), default=0) + 1


async def charge_invoice(
    invoice_id: int, token: str, *, attempt: int | None = None, now: datetime, processor: CardProcessor
) -> ChargeResult:
    """Charge an issued invoice's total to a saved card, once per (invoice, attempt);
    without `attempt`, the next one (`next_attempt`).

    1. A short transaction locks the invoice's row, so that two payers choose
       their attempts one after the other, and writes the card_charge row
       "<invoice>:<attempt>" as pending, or finds it: a finished attempt answers
       as it ended and the processor is not asked again; while an attempt is
       open (another request or worker asking the processor right now) any try
       answers `pending`.
    2. The processor is asked with that key, outside any transaction.
    3. A short transaction records the answer and, on success, marks the invoice
       paid (method "card"). Money taken for an invoice voided meanwhile (only
       once the attempt's lease ran out: invoices refuse to void while it runs)
       is recorded, audited and refunded in full (refunds.py), the invoice left
       void; the partner's Failed charges list shows its subscription until the
       refund succeeded.
    Call it outside the caller's transaction: an open one would be held while
    the processor answers."""
    async with db.write_transaction():
        invoice = await db.for_update(Invoice.select().where(Invoice.id == invoice_id)).first()
        if invoice is None:
            raise ValueError(f"no invoice {invoice_id}")
        charges = await Charge.select().where(Charge.invoice == invoice_id)
        if attempt is None:
            attempt = next_attempt(charges)
        key = charge_key(invoice_id, attempt)
        existing = next((c for c in charges if c["idempotency_key"] == key), None)
        since = now - PENDING_LEASE
        running = [c for c in charges if c is not existing and c["status"] == "pending" and c["attempted_at"] > since]
        if existing is None:
            if invoice["status"] != InvoiceStatus.ISSUED:
                raise invoices.InvoiceTransition(invoice["status"], InvoiceStatus.PAID)
            if running:
                return ChargeResult(ok=False, reference=None, decline_reason=None, pending=True)
            await Charge.insert(
                Charge(
                    invoice=invoice_id,
                    attempt=attempt,
                    amount_cents=invoice["total_cents"],
                    currency=invoice["currency"],
                    status="pending",
                    attempted_at=now,
                    idempotency_key=key,
                )
            )
        elif existing["status"] != "pending":
            return _result_of(existing)
        elif existing["attempted_at"] > now - PENDING_LEASE or running:
            return ChargeResult(ok=False, reference=None, decline_reason=None, pending=True)
        else:
            # Taken over from a worker that died: this try holds the lease now.
            await Charge.update({Charge.attempted_at: now}).where(Charge.id == existing["id"])

    result = await processor.charge(token, invoice["total_cents"], invoice["currency"], key)

    async with db.write_transaction():
        await Charge.update(
            {
                Charge.status: "succeeded" if result.ok else "declined",
                Charge.processor_ref: result.reference,
                Charge.decline_reason: None if result.ok else (result.decline_reason or CARD_DECLINED)[:200],
            }
        ).where((Charge.idempotency_key == key) & (Charge.status == "pending"))
        detail = {
            "invoice": invoice_id,
            "number": invoices.format_invoice_number(invoice["number"]),
            "attempt": attempt,
            "amount_cents": invoice["total_cents"],
            "currency": invoice["currency"],
            "reference": result.reference,
            "decline_reason": result.decline_reason,
        }
        if not result.ok:
            await audit.record(None, "invoice.charge_declined", invoice["company"], now, detail)
            return result
        await audit.record(None, "invoice.charged", invoice["company"], now, detail)
        current = await db.for_update(Invoice.select(Invoice.status).where(Invoice.id == invoice_id)).first()
        refunding: list[int] = []
        if current is not None and current["status"] == InvoiceStatus.ISSUED:
            await invoices.mark_paid(
                invoice_id, method="card", reference=result.reference or key, now=now, recorded_by=None
            )
        else:
            await audit.record(None, "invoice.charged_not_issued", invoice["company"], now, detail)
            if current is not None and current["status"] == InvoiceStatus.VOID:
                taken = await Charge.select().where(Charge.idempotency_key == key)
                refunding = await refunds.queue_void_refunds(taken, now)
    if refunding:
        await refunds.send_waiting(now, processor=processor, invoice_ids=[invoice_id])
    return result
