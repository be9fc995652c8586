"""Settings → Webhooks: a partner's endpoints, the events each takes, its
deliveries with the answers they got, Resend and a test message."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.webhooks import delivery, endpoints
from portal.domain.webhooks.events import EVENTS
from portal.services import Services
from portal.web.flash import flash
from portal.web.forms import text
from portal.web.render import render
from portal.web.session import CurrentActor


class WebhookController(Controller):
    path = "/settings/webhooks"
    include_in_schema = False

    @get("/", name="webhook_endpoints.index")
    async def index(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        return await self._index(request, actor, {})

    async def _index(self, request: HTMXRequest, actor, extra: dict, status_code: int = 200) -> Template:
        context = {
            "endpoints": await endpoints.list_endpoints(actor),
            "events": EVENTS,
            "errors": {},
            "values": {"events": list(EVENTS)},
            **extra,
        }
        return render(request, "pages/webhooks.html", context, status_code=status_code)

    @post("/", name="webhook_endpoints.create")
    async def create(self, request: HTMXRequest, actor: CurrentActor, services: Services) -> Template:
        form = await request.form()
        url, description = text(form.get("url"), 500), text(form.get("description"), 200)
        chosen = [str(v) for v in form.getall("events", [])]
        try:
            row = await endpoints.create(
                actor, url, description, chosen, utcnow(), allow_private=services.webhook_sender.allow_private
            )
        except ValidationFailed as invalid:
            values = {"url": url, "description": description, "events": chosen}
            return await self._index(request, actor, {"errors": invalid.errors, "values": values}, 400)
        return await self._index(request, actor, {"created": row}, 201)

    @get("/{endpoint_id:int}", name="webhook_endpoints.endpoint")
    async def endpoint(
        self, request: HTMXRequest, actor: CurrentActor, endpoint_id: FromPath[int], page: FromQuery[int] = 1
    ) -> Template:
        return render(
            request,
            "pages/webhook_endpoint.html",
            {
                "endpoint": await endpoints.get_endpoint(actor, endpoint_id),
                "deliveries": await delivery.deliveries(actor, endpoint_id, page),
                "events": EVENTS,
                "errors": {},
            },
            fragments={"delivery-results": "partials/webhooks/_deliveries.html"},
        )

    @post("/{endpoint_id:int}", name="webhook_endpoints.update")
    async def update(self, request: HTMXRequest, actor: CurrentActor, endpoint_id: FromPath[int]) -> Redirect:
        form = await request.form()
        chosen = [str(v) for v in form.getall("events", [])]
        active = form.get("active") == "on"
        try:
            await endpoints.update(actor, endpoint_id, text(form.get("description"), 200), chosen, active, utcnow())
        except ValidationFailed as invalid:
            flash(request, " ".join(invalid.errors.values()), "error")
            return Redirect(request.app.route_reverse("webhook_endpoints.endpoint", endpoint_id=endpoint_id))
        state = "on" if active else "off: nothing is sent to it until it is switched on again"
        flash(request, f"Saved. The endpoint takes {len(chosen)} kinds of event and is {state}.")
        return Redirect(request.app.route_reverse("webhook_endpoints.endpoint", endpoint_id=endpoint_id))

    @post("/{endpoint_id:int}/test", name="webhook_endpoints.test")
    async def test(self, request: HTMXRequest, actor: CurrentActor, endpoint_id: FromPath[int]) -> Redirect:
        msg_id = await delivery.send_test(actor, endpoint_id, utcnow())
        flash(request, f"A test message ({msg_id}) is on its way; its delivery shows below within seconds.")
        return Redirect(request.app.route_reverse("webhook_endpoints.endpoint", endpoint_id=endpoint_id))

    @post("/{endpoint_id:int}/deliveries/{delivery_id:int}/resend", name="webhook_endpoints.resend")
    async def resend(
        self, request: HTMXRequest, actor: CurrentActor, endpoint_id: FromPath[int], delivery_id: FromPath[int]
    ) -> Redirect:
        try:
            await delivery.resend(actor, endpoint_id, delivery_id, utcnow())
        except ValidationFailed as invalid:
            flash(request, " ".join(invalid.errors.values()), "error")
        else:
            flash(request, "Sent again: the same message, with the same id, goes out within seconds.")
        return Redirect(request.app.route_reverse("webhook_endpoints.endpoint", endpoint_id=endpoint_id))

    @post("/{endpoint_id:int}/rotate-secret", name="webhook_endpoints.rotate")
    async def rotate(self, request: HTMXRequest, actor: CurrentActor, endpoint_id: FromPath[int]) -> Template:
        secret = await endpoints.rotate_secret(actor, endpoint_id, utcnow())
        return render(
            request,
            "pages/webhook_endpoint.html",
            {
                "endpoint": await endpoints.get_endpoint(actor, endpoint_id),
                "deliveries": await delivery.deliveries(actor, endpoint_id, 1),
                "events": EVENTS,
                "errors": {},
                "new_secret": secret,
            },
        )

    @post("/{endpoint_id:int}/delete", name="webhook_endpoints.delete")
    async def delete(self, request: HTMXRequest, actor: CurrentActor, endpoint_id: FromPath[int]) -> Redirect:
        removed = await endpoints.remove(actor, endpoint_id, utcnow())
        flash(request, f"Removed the endpoint {removed['url']}: nothing more is sent to it.")
        return Redirect(request.app.route_reverse("webhook_endpoints.index"))
