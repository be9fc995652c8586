"""Partner side: Licenses → Orders → "Requested Orders", "Add Filter", and the
row's three-dots menu: "Assign", "Decline"."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template

from portal.domain import orders
from portal.domain.access import require_partner_manager
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.imports import export
from portal.domain.orders import InvalidTransition
from portal.web.flash import flash
from portal.web.render import render
from portal.web.session import CurrentActor


class OrderController(Controller):
    path = "/licences/orders"

    @get("/")
    async def requested_orders(self, request: HTMXRequest, actor: CurrentActor, page: FromQuery[int] = 1) -> Template:
        filters = orders.ORDER_FILTERS.parse(request.query_params)
        listing = await orders.list_orders(actor, filters, page)
        active = orders.ORDER_FILTERS.as_query(filters)
        return render(
            request,
            "pages/orders.html",
            {
                "listing": listing,
                "filters": active,
                "spec": orders.ORDER_FILTERS,
                "choices": await orders.filter_choices(actor, active),
                "query": urlencode(active),
            },
            fragments={"order-results": "partials/orders/_results.html"},
        )

    @get("/export.csv")
    async def export(self, request: HTMXRequest, actor: CurrentActor) -> Stream:
        """The list as filtered on screen, every page of it, for a spreadsheet."""
        filters = orders.ORDER_FILTERS.parse(request.query_params)
        require_partner_manager(actor)  # refused before the first byte goes out
        return Stream(
            export.orders_csv(actor, filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="requested-orders.csv"'},
        )

    @get("/filters/{name:str}")
    async def filter_field(self, request: HTMXRequest, actor: CurrentActor, name: FromPath[str]) -> Template:
        """ "Add Filter": the field of one filter, added to the filter bar."""
        if name not in orders.ORDER_FILTERS:
            name = "status"
        return render(
            request,
            "partials/orders/_filter.html",
            {
                "name": name,
                "value": "",
                "spec": orders.ORDER_FILTERS,
                "choices": await orders.filter_choices(actor, {name}),
            },
        )

    @get("/{order_id:int}/menu")
    async def menu(self, request: HTMXRequest, actor: CurrentActor, order_id: FromPath[int]) -> Template:
        """The row's three-dots menu, "Assign" and "Decline" while it is requested:
        loaded into the row when it opens, or a page of its own (the row's link, no JavaScript)."""
        return render(
            request,
            "pages/order_actions.html",
            {"o": await orders.get_order(actor, order_id)},
            fragments={f"menu-{order_id}": "partials/orders/_menu.html"},
        )

    @post("/{order_id:int}/assign")
    async def assign(self, request: HTMXRequest, actor: CurrentActor, order_id: FromPath[int]) -> Template | Redirect:
        try:
            batch = await orders.assign_order(actor, order_id, utcnow())
        except ValidationFailed as refused:
            return await self._answer(request, actor, order_id, refused)
        return await self._answer(
            request,
            actor,
            order_id,
            done=lambda o: (
                f"Assigned {o['quantity']:,} × {o['product_name']} to {o['company_name']}, "
                f"running until {batch['ends_at']:%d %b %Y}."
            ),
        )

    @post("/{order_id:int}/decline")
    async def decline(self, request: HTMXRequest, actor: CurrentActor, order_id: FromPath[int]) -> Template | Redirect:
        form = await request.form()
        try:
            await orders.decline_order(actor, order_id, str(form.get("reason", "")), utcnow())
        except ValidationFailed as refused:
            return await self._answer(request, actor, order_id, refused)
        return await self._answer(
            request,
            actor,
            order_id,
            done=lambda o: f"Declined the order of {o['quantity']:,} licences from {o['company_name']}.",
        )

    async def _answer(
        self,
        request: HTMXRequest,
        actor,
        order_id: int,
        refused: ValidationFailed | None = None,
        done: Callable[[orders.OrderRow], str] | None = None,
    ) -> Template | Redirect:
        """htmx posts from the row menu: the row, swapped in place. A plain form
        (the order's page, no JavaScript): back to the list with what was done,
        or the order's page again saying why not."""
        order = await orders.get_order(actor, order_id)
        if request.htmx and request.htmx.target == f"order-{order_id}":
            # 200 even when refused: htmx swaps only successful answers, and the row says why.
            message = str(refused) if refused else None
            return render(request, "partials/orders/_rows.html", {"rows": [order], "message": message})
        if refused is None:
            if done:
                flash(request, done(order))
            return Redirect("/licences/orders")
        return render(
            request,
            "pages/order_actions.html",
            {"o": order, "message": str(refused)},
            status_code=409 if isinstance(refused, InvalidTransition) else 400,
        )
