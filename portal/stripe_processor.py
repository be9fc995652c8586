"""Stripe as the card processor, through the official `stripe` package.

- A Customer per billing account: made when the account's first card is kept, and
  reused for every card that replaces it (found from the card it replaces).
- Saving a card: the billing page asks `card_setup` for a SetupIntent; Stripe.js
  (Elements) confirms it in the browser with the card, which never reaches the
  portal; the page posts the PaymentMethod id; `keep_card` attaches it to the
  account's Customer for charges without the cardholder.
- Charging (purchases, changes, renewals, dunning): an off-session PaymentIntent,
  confirmed at once, with the charge row's key as Stripe's idempotency key.
  A bank that asks for 3-D Secure answers "requires action": the charge is
  declined with the PaymentIntent's id, and the customer is e-mailed a link to
  confirm it in the browser.
- Refunding: a Refund of the PaymentIntent, keyed by the portal's refund row (Stripe's
  idempotency key, and the metadata `refund_key` by which the charge.refunded event
  finds the refund it reports).

The SDK's calls are blocking (requests): each runs in a worker thread, so the event
loop goes on while Stripe answers. Network failures are raised: the charge row
stays pending and is asked again later with the same key."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import stripe

from portal.domain.billing.payments import (
    CARD_DECLINED,
    NEEDS_AUTHENTICATION,
    NO_PAYMENT_METHOD,
    ChargeResult,
    RefundResult,
    SavedCard,
)
from portal.domain.errors import ValidationFailed

BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express"}
_PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9]{1,60}")
NOT_THIS_ACCOUNT = "That card belongs to another account: enter it again."


class StripeProcessor:
    name = "stripe"

    def __init__(self, secret_key: str, *, api_base: str | None = None) -> None:
        self.test_mode = not secret_key.startswith("sk_live_")
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            # A retry here would hold a web request; the charge row's lease retries instead.
            max_network_retries=0,
        )

    @property
    def client(self) -> stripe.StripeClient:
        return self._client

    async def card_setup(self) -> str | None:
        params: Any = {"payment_method_types": ["card"], "usage": "off_session"}
        intent = await asyncio.to_thread(self._client.v1.setup_intents.create, params)
        return intent.client_secret

    async def keep_card(
        self, payment_method: str, *, previous_token: str | None, email: str, name: str, now: datetime
    ) -> SavedCard:
        if not _PAYMENT_METHOD.fullmatch(payment_method):
            raise ValidationFailed({"card": NO_PAYMENT_METHOD})
        return await asyncio.to_thread(self._keep, payment_method, previous_token, email, name, now)

    def _keep(self, pm_id: str, previous: str | None, email: str, name: str, now: datetime) -> SavedCard:
        payment_methods = self._client.v1.payment_methods
        try:
            method = payment_methods.retrieve(pm_id)
        except stripe.InvalidRequestError as exc:
            raise ValidationFailed({"card": NO_PAYMENT_METHOD}) from exc
        customer = self._customer_of(previous)
        if method.customer and method.customer != customer:
            # Only a card just set up in this account's browser (attached to no one yet) is taken.
            raise ValidationFailed({"card": NOT_THIS_ACCOUNT})
        card = method.card
        if card is None:
            raise ValidationFailed({"card": NO_PAYMENT_METHOD})
        if (card.exp_year, card.exp_month) < (now.year, now.month):
            raise ValidationFailed({"card": "This card has expired."})
        if not method.customer:
            if customer is None:
                params: Any = {"email": email} if email else {}
                if name:
                    params["name"] = name
                customer = self._client.v1.customers.create(params).id
            try:
                payment_methods.attach(pm_id, {"customer": customer})
            except stripe.CardError as exc:
                raise ValidationFailed({"card": exc.user_message or CARD_DECLINED}) from exc
        return SavedCard(
            token=pm_id,
            brand=BRANDS.get(card.brand, card.brand.title())[:20],
            last4=card.last4,
            expires=f"{card.exp_year:04d}-{card.exp_month:02d}",
        )

    def _customer_of(self, token: str | None) -> str | None:
        """The Customer of the card being replaced: one Customer per billing account."""
        if not token or not _PAYMENT_METHOD.fullmatch(token):
            return None
        try:
            customer = self._client.v1.payment_methods.retrieve(token).customer
        except stripe.InvalidRequestError:
            return None
        return customer if isinstance(customer, str) else getattr(customer, "id", None)

    async def charge(self, token: str, amount_cents: int, currency: str, idempotency_key: str) -> ChargeResult:
        if amount_cents <= 0 or not _PAYMENT_METHOD.fullmatch(token):
            return ChargeResult(ok=False, reference=None, decline_reason=CARD_DECLINED)
        return await asyncio.to_thread(self._charge, token, amount_cents, currency, idempotency_key)

    def _charge(self, token: str, amount_cents: int, currency: str, key: str) -> ChargeResult:
        customer = self._customer_of(token)
        if customer is None:
            return ChargeResult(ok=False, reference=None, decline_reason=CARD_DECLINED)
        try:
            intent = self._client.v1.payment_intents.create(
                {
                    "amount": amount_cents,
                    "currency": currency.lower(),
                    "customer": customer,
                    "payment_method": token,
                    "off_session": True,
                    "confirm": True,
                    "metadata": {"charge_key": key},
                },
                {"idempotency_key": f"charge:{key}"},
            )
        except stripe.CardError as exc:
            error = exc.error
            intent_id = getattr(getattr(error, "payment_intent", None), "id", None) if error else None
            if exc.code == "authentication_required" and intent_id:
                return ChargeResult(
                    ok=False, reference=intent_id, decline_reason=NEEDS_AUTHENTICATION, requires_action=intent_id
                )
            return ChargeResult(ok=False, reference=intent_id, decline_reason=exc.user_message or CARD_DECLINED)
        if intent.status == "succeeded":
            return ChargeResult(ok=True, reference=intent.id, decline_reason=None)
        if intent.status == "requires_action":
            return ChargeResult(
                ok=False, reference=intent.id, decline_reason=NEEDS_AUTHENTICATION, requires_action=intent.id
            )
        # "processing" and the like: not an answer yet; the row stays pending and is asked again with its key.
        raise RuntimeError(f"payment {intent.id} is {intent.status}")

    async def confirmation(self, intent_id: str) -> tuple[str, str | None]:
        """A PaymentIntent waiting for its cardholder: its status and client secret (the
        confirmation page gives the secret to Stripe.js)."""
        intent = await asyncio.to_thread(self._client.v1.payment_intents.retrieve, intent_id)
        return intent.status, intent.client_secret

    async def refund(
        self, payment_reference: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        if amount_cents <= 0 or not payment_reference.startswith("pi_"):
            return RefundResult(ok=False, reference=None, failure="Not a card payment taken through Stripe.")
        return await asyncio.to_thread(self._refund, payment_reference, amount_cents, idempotency_key)

    def _refund(self, intent_id: str, amount_cents: int, key: str) -> RefundResult:
        try:
            refund = self._client.v1.refunds.create(
                {"payment_intent": intent_id, "amount": amount_cents, "metadata": {"refund_key": key}},
                {"idempotency_key": f"refund:{key}"},
            )
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            return RefundResult(
                ok=False, reference=None, failure=(exc.user_message or "Stripe refused the refund.")[:200]
            )
        if refund.status in ("failed", "canceled"):
            return RefundResult(ok=False, reference=refund.id, failure=f"Stripe says the refund {refund.status}.")
        # "pending": accepted; the bank has yet to move the money, as most refunds' first days.
        return RefundResult(ok=True, reference=refund.id)
