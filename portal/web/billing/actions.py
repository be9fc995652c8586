"""What is done to one subscription: Cancel and its undo, "Request cancellation" and
its confirmation by partner staff, "Request an invoice". Each says before (on the
page with the button) and after (a flash) what it changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from litestar import Controller, post
from litestar.handlers import HTTPRouteHandler
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
from portal.web.redirects import local_path
from portal.web.session import CurrentActor

Action = Callable[[Actor, int, datetime], Awaitable[dict]]


def _subscription_action(
    path: str,
    action: Action,
    said: Callable[[dict], str],
    *,
    back: Callable[[Actor], str | None] = lambda actor: None,
    page: str = "/billing/subscriptions",
) -> HTTPRouteHandler:
    """POST `path`: `action` on the subscription, then `said(result)` as a flash and the
    customer's `page` (or `back(actor)`). A refusal (already cancelled, past its end…)
    is said on the page the button was on."""

    async def act(
        self: Controller, request: HTMXRequest, actor: CurrentActor, subscription_id: FromPath[int]
    ) -> Redirect:
        try:
            result = await action(actor, subscription_id, utcnow())
        except ValidationFailed as refused:
            flash(request, str(refused), "error")
            return Redirect(back(actor) or _referrer(request) or "/")
        flash(request, said(result))
        # The result is a subscription or an invoice: either names its customer.
        return Redirect(back(actor) or f"/companies/{result['company']}{page}")

    act.__name__ = act.__qualname__ = path.strip("/").replace("-", "_")
    return post(path)(act)


def _cancelled(s: dict) -> str:
    if s["status"] == "ended":
        return _ended_unpaid(s)
    return f"Cancelled: nothing renews. The license runs until {_day(s['term_end'])}; you can undo this before then."


def _ended_unpaid(s: dict) -> str:
    """A subscription cancelled before its first payment: its invoice goes with it."""
    void = ", ".join(s.get("voided_invoices") or [])
    return "Cancelled before it was paid: nothing was bought" + (f" and invoice {void} is void." if void else ".")


def _cancellation_undone(s: dict) -> str:
    if s["method"] == "online":
        return f"Cancellation undone: the license renews by itself on {_day(s['term_end'])}."
    return f"Cancellation undone: a renewal invoice follows 30 days before {_day(s['term_end'])}."


def _cancellation_requested(s: dict) -> str:
    return f"Cancellation requested: your partner's staff confirm it, and nothing renews after {_day(s['term_end'])}."


def _invoice_requested(invoice: dict) -> str:
    return (
        f"Renewal invoice {_number(invoice)} for {_total(invoice)} is ready below; "
        "paid before the end, the next term starts where this one ends."
    )


def _cancellation_confirmed(s: dict) -> str:
    if s["status"] == "ended":
        return _ended_unpaid(s)
    return f"Cancellation confirmed: the subscription ends on {_day(s['term_end'])} and does not renew."


def _partner_list(actor: Actor) -> str | None:
    """Partner staff outside manage mode act from their Subscriptions list, and go back to it."""
    return "/billing" if actor.is_partner_manager and not actor.managing_id else None


def _referrer(request: HTMXRequest) -> str | None:
    """Our own page the form was on (same origin, and a path: "<origin>//evil.example"
    would leave the site), to show the refusal there."""
    referer = request.headers.get("referer", "")
    origin = f"{request.url.scheme}://{request.url.netloc}"
    if not referer.startswith(origin + "/"):
        return None
    return local_path(referer.removeprefix(origin)) or None


class SubscriptionActionController(Controller):
    path = "/billing/subscriptions/{subscription_id:int}"

    cancel = _subscription_action("/cancel", cancellation.cancel, _cancelled)
    undo_cancel = _subscription_action(
        "/undo-cancel", cancellation.undo_cancel, _cancellation_undone, back=_partner_list
    )
    request_cancellation = _subscription_action(
        "/request-cancellation", cancellation.request_cancellation, _cancellation_requested
    )
    request_invoice = _subscription_action(
        "/request-invoice", invoice_subscriptions.request_invoice, _invoice_requested, page="/billing"
    )
    confirm_cancellation = _subscription_action(
        "/confirm-cancellation",
        cancellation.confirm_cancellation,
        _cancellation_confirmed,
        back=lambda actor: "/billing?cancellation_requested=yes",
    )
