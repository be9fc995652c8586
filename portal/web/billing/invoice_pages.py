"""One invoice, printable (static/billing.css prints it alone, black on white, one
page) and as a PDF (billing/pdf.py); partner staff record its payment here (card by phone, bank transfer, money
order, check, with a reference), void it with a reason, or void and reissue it."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response, Template

from portal.domain.access import Actor, require_partner_manager
from portal.domain.billing import accounts, documents, invoices, settlement
from portal.domain.billing.money import format_rate
from portal.domain.billing.renewal import voiding
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.web.billing import refund_pages
from portal.web.billing.common import form_page, services_of
from portal.web.billing.messages import _day, _number, _total, void_effect
from portal.web.billing.pdf import pdf_response, template_env
from portal.web.flash import flash
from portal.web.forms import text
from portal.web.session import CurrentActor


class InvoiceController(Controller):
    path = "/invoices/{invoice_id:int}"

    @get("/", name="billing.invoice.invoice")
    async def invoice(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Template:
        return await self._page(request, actor, invoice_id, {}, {})

    @get("/pdf", name="billing.invoice.pdf")
    async def pdf(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Response[bytes]:
        """ "Download PDF": the invoice as its seller's finance papers, for whoever may see its page."""
        document = await documents.invoice_document(actor, invoice_id)
        return await pdf_response(template_env(request), document)

    @post("/payment", name="billing.invoice.record_payment")
    async def record_payment(
        self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]
    ) -> Template | Redirect:
        require_partner_manager(actor)
        form = await request.form()
        method, reference = text(form.get("method"), 20), text(form.get("reference"), 100)
        try:
            result = await settlement.record_payment(
                actor, invoice_id, method=method, reference=reference, now=utcnow()
            )
        except ValidationFailed as refused:
            values = {"method": method, "reference": reference}
            return await self._page(request, actor, invoice_id, values, refused.errors)
        invoice = result.get("invoice", result)
        said = f"Payment of {_total(invoice)} recorded on invoice {_number(invoice)}."
        batch = result.get("batch")
        if batch:
            said += f" {batch['seats']:,} licenses assigned, until {_day(batch['ends_at'])}."
        flash(request, said)
        return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))

    @post("/pay", name="billing.invoice.pay")
    async def pay(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Redirect:
        """ "Pay Online": an unpaid invoice (a declined first charge, a change, a renewal asked
        for early) charged to the card on the company's billing account."""
        try:
            result = await settlement.pay_invoice(actor, invoice_id, utcnow(), processor=services_of(request).processor)
        except ValidationFailed as refused:
            flash(request, str(refused), "error")
            return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))
        invoice, charge = result["invoice"], result["charge"]
        if charge.requires_action:
            return Redirect(
                request.app.route_reverse("billing.invoice.confirm_page", invoice_id=invoice_id)
            )  # the bank asks its cardholder
        if not charge.ok:
            flash(request, f"Your card was not charged: {charge.decline_reason or 'try again in a minute.'}", "error")
            return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))
        said = f"Paid {_total(invoice)} by card (invoice {_number(invoice)})."
        if result.get("batch"):
            said += f" {result['batch']['seats']:,} licenses are ready to allocate."
        flash(request, said)
        return Redirect(request.app.route_reverse("billing.customer.dashboard", company_id=invoice["company"]))

    @get("/confirm-payment", name="billing.invoice.confirm_page")
    async def confirm_page(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Template:
        """The link of the e-mail a held payment sends (the bank asked for 3-D Secure): the
        processor's script asks the bank to confirm it in this browser, then tells the portal."""
        return await self._confirm_page(request, actor, invoice_id, {})

    @post("/confirm-payment", name="billing.invoice.confirm_payment")
    async def confirm_payment(
        self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]
    ) -> Template | Redirect:
        processor = services_of(request).processor
        try:
            result = await settlement.confirm_payment(actor, invoice_id, utcnow(), processor=processor)
        except ValidationFailed as refused:
            return await self._confirm_page(request, actor, invoice_id, refused.errors)
        invoice = result["invoice"]
        said = f"Paid {_total(invoice)} by card (invoice {_number(invoice)})."
        if result.get("batch"):
            said += f" {result['batch']['seats']:,} licenses are ready to allocate."
        flash(request, said)
        return Redirect(request.app.route_reverse("billing.customer.dashboard", company_id=invoice["company"]))

    async def _confirm_page(
        self, request: HTMXRequest, actor: Actor, invoice_id: int, errors: dict[str, str]
    ) -> Template:
        processor = services_of(request).processor
        invoice = await invoices.get_invoice(actor, invoice_id)
        secret = None
        try:
            _, charge = await settlement.payment_to_confirm(actor, invoice_id)
            if invoice["status"] == "issued":
                _, secret = await processor.confirmation(charge["processor_ref"])
        except ValidationFailed as refused:
            errors = errors or refused.errors
        context = {"invoice": invoice, "client_secret": secret}
        return form_page(request, "pages/payment_confirm.html", context, {}, errors)

    @post("/void", name="billing.invoice.void")
    async def void(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Template | Redirect:
        """ "Void": an issued invoice cancelled with a reason, nothing issued in its place.
        The domain refuses anyone but partner staff of the invoice's wing (404 outside it)."""
        form = await request.form()
        reason = text(form.get("reason"), 400)
        try:
            # What voiding does, worked out before it is done (a purchase's subscription ends with it).
            effect = void_effect(await voiding.if_voided(await invoices.get_invoice(actor, invoice_id)))
            voided = await invoices.void(actor, invoice_id, reason, utcnow())
        except invoices.InvoiceTransition as refused:
            flash(request, str(refused), "error")  # paid or void meanwhile: its forms are gone from the page
            return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))
        except ValidationFailed as refused:
            return await self._page(request, actor, invoice_id, {"reason": reason}, refused.errors)
        flash(
            request,
            f"Invoice {_number(voided)} for {_total(voided)} voided (reason: {voided['void_reason']}). "
            f"Nothing replaces it; {effect}",
        )
        return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))

    @post("/reissue", name="billing.invoice.reissue")
    async def reissue(self, request: HTMXRequest, actor: CurrentActor, invoice_id: FromPath[int]) -> Redirect:
        """ "Void and reissue": an issued invoice is never edited; a new one takes its place."""
        require_partner_manager(actor)
        try:
            new = await invoices.reissue(actor, invoice_id, utcnow())
        except ValidationFailed as refused:
            flash(request, str(refused), "error")
            return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=invoice_id))
        flash(request, f"Invoice voided; {_number(new)} for {_total(new)} issued in its place.")
        return Redirect(request.app.route_reverse("billing.invoice.invoice", invoice_id=new["id"]))

    async def _page(
        self, request: HTMXRequest, actor: Actor, invoice_id: int, values: dict[str, Any], errors: dict[str, str]
    ) -> Template:
        invoice = await invoices.get_invoice(actor, invoice_id)
        # "Pay Online" on an unpaid invoice needs a card on the buyer's billing account.
        issued = invoice["status"] == "issued"
        account = await accounts.billing_account(actor, invoice["company"]) if issued else None
        # Said beside "Void", which partner staff see on an issued invoice.
        effect = void_effect(await voiding.if_voided(invoice)) if issued and actor.is_partner_manager else ""
        return form_page(
            request,
            "pages/invoice.html",
            {
                "invoice": invoice,
                "can_pay_online": bool(account and account.get("card_last4")),
                "tax_rate": format_rate(invoice["tax_rate_bp"]),
                "offline_methods": settlement.OFFLINE_METHODS,
                "void_effect": effect,
                "refunds": await refund_pages.invoice_context(actor, invoice),
            },
            values,
            errors,
        )
