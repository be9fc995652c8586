"""Refund a paid invoice (partner staff): a form with the amount (what is left to
refund, unless changed) and the reason; a confirmation saying what will change;
then the invoice, saying what changed. And a credit note's own page."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response, Template

from portal.domain.access import Actor, require_partner_manager
from portal.domain.billing import credit_notes, documents, invoices, refunds
from portal.domain.billing.money import format_money
from portal.domain.billing.quotes import refuse_read_only
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.web.billing.common import form_page, quote_key, services_of
from portal.web.billing.partner import _amount_cents as amount_cents
from portal.web.billing.pdf import pdf_response, template_env
from portal.web.flash import Kind, flash
from portal.web.forms import text
from portal.web.session import CurrentActor


async def invoice_context(actor: Actor, invoice: dict) -> dict[str, Any]:
    """What the invoice page's Refunds section shows (partials/billing/_refunds.html)."""
    state = await refunds.refundable(actor, invoice["id"])
    return {
        "rows": await refunds.of_invoice(invoice["id"]),
        "left_cents": state["left_cents"],
        "may_refund": refunds.may_refund(actor) and state["left_cents"] > 0,
    }


def what_will_change(state: dict, amount: int) -> str:
    """The confirmation's sentence: where the money goes, and the credit note."""
    invoice = state["invoice"]
    said = format_money(amount, invoice["currency"])
    if state["method"] == "card":
        card = f"the card ending {state['card_last4']}" if state["card_last4"] else "the card it was paid with"
        where = f"Refund {said} to {card}"
    else:
        where = f"Record {said} as refunded (you return it to the customer yourself, the way it was paid)"
    return f"{where} and issue a credit note for it against invoice {invoice['number_label']}."


def _amount(raw: object) -> int:
    cents = amount_cents(raw)
    if cents is None:
        raise ValidationFailed({"amount": "Enter an amount in dollars and cents, like 120.50."})
    return cents


class RefundController(Controller):
    path = "/invoices/{invoice_id:int}/refund"

    @get("/", name="billing.refund.form")
    async def form(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Template:
        return await self._form(request, actor, invoice_id, {}, {})

    @post("/confirm", name="billing.refund.confirm")
    async def confirm(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Template:
        """Checks what the form says and shows what the refund will change; changes nothing."""
        form = await request.form()
        values = {"amount": text(form.get("amount"), 30), "reason": text(form.get("reason"), 400)}
        state = await self._state(actor, invoice_id)
        try:
            amount = _amount(values["amount"])
            reason = refunds.clean_reason(values["reason"])
            refunds.check_amount(state, amount)
        except ValidationFailed as refused:
            return await self._form(request, actor, invoice_id, values, refused.errors)
        context = {
            "state": state,
            "invoice": state["invoice"],
            "amount_cents": amount,
            "amount_text": f"{amount // 100}.{amount % 100:02d}",
            "reason": reason,
            "key": quote_key(),
            "will_change": what_will_change(state, amount),
        }
        return form_page(request, "pages/refund_confirm.html", context, values, {})

    @post("/", name="billing.refund.refund")
    async def refund(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Template | Redirect:
        form = await request.form()
        values = {"amount": text(form.get("amount"), 30), "reason": text(form.get("reason"), 400)}
        key = text(form.get("key"), 64)
        try:
            if not key:
                raise ValidationFailed({"amount": "Check the refund and confirm it."})
            result = await refunds.refund(
                actor,
                invoice_id,
                _amount(values["amount"]),
                values["reason"],
                key,
                utcnow(),
                processor=services_of(request).processor,
            )
        except ValidationFailed as refused:
            if "refund" in refused.errors:  # the processor away: the refund is written, pending
                flash(request, refused.errors["refund"], "error")
                return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))
            return await self._form(request, actor, invoice_id, values, refused.errors)
        flash(request, *said_of(result))
        return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))

    async def _state(self, actor: Actor, invoice_id: int) -> dict:
        # Another tenant's invoice is not found, whoever asks; then who may.
        state = await refunds.refundable(actor, invoice_id)
        require_partner_manager(actor)
        refuse_read_only(actor)
        state["invoice"]["number_label"] = invoices.format_invoice_number(state["invoice"]["number"])
        return state

    async def _form(
        self, request: HTMXRequest, actor: Actor, invoice_id: int, values: dict[str, Any], errors: dict[str, str]
    ) -> Template:
        state = await self._state(actor, invoice_id)
        left = state["left_cents"]
        if "amount" not in values:
            values = {**values, "amount": f"{left // 100}.{left % 100:02d}"}
        return form_page(request, "pages/refund.html", {"state": state, "invoice": state["invoice"]}, values, errors)


def said_of(result: dict) -> tuple[str, Kind]:
    """What the refund changed, as the flash message says it (and its kind)."""
    row, note = result["refund"], result["credit_note"]
    amount = format_money(row["amount_cents"], row["currency"])
    if row["status"] == "failed":
        return f"Nothing was refunded: {row['failure']}", "error"
    if row["status"] == "pending":
        return f"The refund of {amount} is being made; this page shows it once the processor answered.", "ok"
    credited = f" Credit note {note['label']} issued." if note else ""
    if row["method"] == "card":
        return f"Refunded {amount} to the card.{credited} The customer's managers are e-mailed.", "ok"
    return (
        f"Recorded {amount} as refunded: return it to the customer yourself.{credited} "
        "The customer's managers are e-mailed.",
        "ok",
    )


class CreditNoteController(Controller):
    path = "/credit-notes/{credit_note_id:int}"

    @get("/", name="billing.refund.credit_note")
    async def credit_note(self, request: HTMXRequest, actor: CurrentActor, credit_note_id: FromPath[int]) -> Template:
        note = await credit_notes.get_credit_note(actor, credit_note_id)
        return form_page(request, "pages/credit_note.html", {"note": note}, {}, {})

    @get("/pdf", name="billing.refund.pdf")
    async def pdf(self, request: HTMXRequest, actor: CurrentActor, credit_note_id: FromPath[int]) -> Response[bytes]:
        """ "Download PDF": the credit note for the buyer's and the seller's books."""
        document = await documents.credit_note_document(actor, credit_note_id)
        return await pdf_response(template_env(request), document)
