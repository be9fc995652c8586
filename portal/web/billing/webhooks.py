"""Stripe's webhook: POST /webhooks/stripe.

The event is verified on the raw body (the signature covers the exact bytes, and
its timestamp must be recent: an old, replayed request is refused), kept once by
its id, and answered 200 at once; a job records what it says
(portal/domain/billing/stripe_events.py). A forged or stale request gets 400 and
nothing is kept. No session, no CSRF token: Stripe signs instead."""

from __future__ import annotations

import logging

import stripe
from litestar import Request, post
from litestar.exceptions import NotFoundException
from litestar.response import Response

from portal.domain.billing import stripe_events
from portal.domain.clock import utcnow
from portal.services import Services

log = logging.getLogger("portal.billing.webhooks")


@post(
    "/webhooks/stripe",
    exclude_from_csrf=True,
    skip_session=True,
    status_code=200,
    name="billing.webhooks.stripe_webhook",
)
async def stripe_webhook(request: Request) -> Response:
    services = request.app.state.services
    assert isinstance(services, Services)
    if not services.webhook_secret:
        raise NotFoundException("No Stripe webhook is configured (STRIPE_WEBHOOK_SECRET).")
    body = await request.body()
    try:
        event = stripe.Webhook.construct_event(body, request.headers.get("stripe-signature"), services.webhook_secret)
    except (ValueError, stripe.SignatureVerificationError) as refused:
        # ValueError: not UTF-8 or not JSON; the signature's: forged, of another secret, or too old.
        log.warning("stripe webhook refused", extra={"reason": str(refused)[:200]})
        return Response({"error": "The signature or the timestamp of this event is not valid."}, status_code=400)
    event_id, event_type = getattr(event, "id", None), getattr(event, "type", None)
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255 or not isinstance(event_type, str):
        return Response({"error": "This event has no id or type."}, status_code=400)
    if await stripe_events.receive(event_id, event_type, body.decode(), utcnow()):
        try:
            await request.app.state.jobs.enqueue("process_stripe_event", event_id, job_id=f"stripe_event:{event_id}")
        except Exception:
            # Kept already: the billing tick processes events whose job never ran.
            log.exception("queuing a stripe event failed", extra={"event": event_id})
    return Response({"received": True})
