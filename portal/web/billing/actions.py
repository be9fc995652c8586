"""What is done to one subscription: Cancel and its undo, "Request cancellation" and
its confirmation by partner staff, "Request an invoice". Each says before (on the
page with the button) and after (a flash) what it changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from litestar import Controller, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect

from portal.domain.access import Actor
from portal.domain.billing import cancellation
from portal.domain.billing.renewal import invoice_subscriptions
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.web.billing.messages import _day, _number, _total
from portal.web.flash import flash
from portal.web.session import CurrentActor

Action = Callable[[Actor, int, datetime], Awaitable[dict]]


def _company_of(result: dict[str, Any]) -> int:
    """The customer of what an action returned (a subscription or an invoice)."""
    return result["company"]


class SubscriptionActionController(Controller):
    path = "/billing/subscriptions/{subscription_id:int}"

    @post("/cancel")
    async def cancel(self, request: HTMXRequest, actor: CurrentActor, subscription_id: FromPath[int]) -> Redirect:
        return await self._act(
            request,
            actor,
            subscription_id,
            cancellation.cancel,
            lambda s: (
                f"Cancelled: nothing renews. The licence runs until {_day(s['term_end'])}; "
                "you can undo this before then."
            ),
        )

    @post("/undo-cancel")
    async def undo_cancel(self, request: HTMXRequest, actor: CurrentActor, subscription_id: FromPath[int]) -> Redirect:
        return await self._act(
            request,
            actor,
            subscription_id,
            cancellation.undo_cancel,
            lambda s: (
                f"Cancellation undone: the licence renews by itself on {_day(s['term_end'])}."
                if s["method"] == "online"
                else f"Cancellation undone: a renewal invoice follows 30 days before {_day(s['term_end'])}."
            ),
            back=_partner_list(actor),
        )

    @post("/request-cancellation")
    async def request_cancellation(
        self, request: HTMXRequest, actor: CurrentActor, subscription_id: FromPath[int]
    ) -> Redirect:
        return await self._act(
            request,
            actor,
            subscription_id,
            cancellation.request_cancellation,
            lambda s: (
                "Cancellation requested: your partner's staff confirm it, and nothing renews after "
                f"{_day(s['term_end'])}."
            ),
        )

    @post("/request-invoice")
    async def request_invoice(
        self, request: HTMXRequest, actor: CurrentActor, subscription_id: FromPath[int]
    ) -> Redirect:
        return await self._act(
            request,
            actor,
            subscription_id,
            invoice_subscriptions.request_invoice,
            lambda invoice: (
                f"Renewal invoice {_number(invoice)} for {_total(invoice)} is ready below; "
                "paid before the end, the next term starts where this one ends."
            ),
            to_dashboard=True,
        )

    @post("/confirm-cancellation")
    async def confirm_cancellation(
        self, request: HTMXRequest, actor: CurrentActor, subscription_id: FromPath[int]
    ) -> Redirect:
        return await self._act(
            request,
            actor,
            subscription_id,
            cancellation.confirm_cancellation,
            lambda s: f"Cancellation confirmed: the subscription ends on {_day(s['term_end'])} and does not renew.",
            back="/billing?cancellation_requested=yes",
        )

    async def _act(
        self,
        request: HTMXRequest,
        actor: Actor,
        subscription_id: int,
        action: Action,
        said: Callable[[dict], str],
        back: str | None = None,
        to_dashboard: bool = False,
    ) -> Redirect:
        """A refusal (already cancelled, past its end…) is said on the page the button was on."""
        try:
            result = await action(actor, subscription_id, utcnow())
        except ValidationFailed as refused:
            flash(request, str(refused), "error")
            return Redirect(back or _referrer(request) or "/")
        flash(request, said(result))
        page = "/billing" if to_dashboard else "/billing/subscriptions"
        return Redirect(back or f"/companies/{_company_of(result)}{page}")


def _partner_list(actor: Actor) -> str | None:
    """Partner staff outside manage mode act from their Subscriptions list, and go back to it."""
    return "/billing" if actor.is_partner_manager and not actor.managing_id else None


def _referrer(request: HTMXRequest) -> str | None:
    """Our own page the form was on (same origin), to show the refusal there."""
    referer = request.headers.get("referer", "")
    origin = f"{request.url.scheme}://{request.url.netloc}"
    return referer.removeprefix(origin) if referer.startswith(origin + "/") else None
