"""Partner side: Licenses → Orders → "Requested Orders", "Add Filter", and the
row's three-dots menu: "Assign", "Decline"."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template

from portal.domain.access import require_partner_manager
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.imports import export
from portal.domain.orders import decisions, order_list
from portal.domain.orders.decisions import InvalidTransition
from portal.web.cursors import list_cursor_key
from portal.web.flash import flash
from portal.web.render import render
from portal.web.session import CurrentActor

# The value of a filter's "Any" option: "" drops the filter, but a dropped status
# means Requested, so choosing every status must say so.
ANY_VALUE = {"status": order_list.ANY_STATUS}


class OrderController(Controller):
    path = "/licences/orders"

    @get("/", name="orders.requested_orders")
    async def requested_orders(
        self, request: HTMXRequest, actor: CurrentActor, cursor: FromQuery[str] = ""
    ) -> Template:
        filters = order_list.parse_filters(request.query_params)
        listing = await order_list.list_orders(actor, filters, cursor or None, list_cursor_key(request))
        active = order_list.ORDER_FILTERS.as_query(filters)
        return render(
            request,
            "pages/orders.html",
            {
                "listing": listing,
                "filters": active,
                "spec": order_list.ORDER_FILTERS,
                "choices": await order_list.filter_choices(actor, active),
                "query": urlencode(active),
                "any_value": ANY_VALUE,
            },
            fragments={"order-results": "partials/orders/_results.html"},
        )

    @get("/export.csv", name="orders.export")
    async def export(self, request: HTMXRequest, actor: CurrentActor) -> Stream:
        """The list as filtered on screen, every page of it, for a spreadsheet."""
        filters = order_list.parse_filters(request.query_params)
        require_partner_manager(actor)  # refused before the first byte goes out
        return Stream(
            export.orders_csv(actor, filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="requested-orders.csv"'},
        )

    @get("/filters/{name:str}", name="orders.filter_field")
    async def filter_field(self, request: HTMXRequest, actor: CurrentActor, name: FromPath[str]) -> Template:
        """ "Add Filter": the field of one filter, added to the filter bar."""
        if name not in order_list.ORDER_FILTERS:
            name = "status"
        return render(
            request,
            "partials/_filter_field.html",
            {
                "name": name,
                "value": "",
                "spec": order_list.ORDER_FILTERS,
                "choices": await order_list.filter_choices(actor, {name}),
                "any_value": ANY_VALUE,
            },
        )

    @get("/{order_id:int}/menu", name="orders.menu")
    async def menu(self, request: HTMXRequest, actor: CurrentActor, order_id: FromPath[int]) -> Template:
        """The row's three-dots menu, "Assign" and "Decline" while it is requested:
        loaded into the row when it opens, or a page of its own (the row's link, no JavaScript)."""
        order = await order_list.get_order(actor, order_id)
        return render(
            request,
            "pages/order_actions.html",
            # The row itself, for "Cancel" on the Assign confirmation shown in its place.
            {"o": order, "rows": [order], "focus": "menu"},
            fragments={
                f"menu-{order_id}": "partials/orders/_menu.html",
                f"order-{order_id}": "partials/orders/_rows.html",
            },
        )

    @post("/{order_id:int}/assign", name="orders.assign")
    async def assign(self, request: HTMXRequest, actor: CurrentActor, order_id: FromPath[int]) -> Template | Redirect:
        """ "Assign" asks first: without `confirm` it answers with what it will do
        (the row's replacement for htmx, a page without JavaScript), whose button
        posts again with `confirm`. A second confirmation (double click, two
        managers) is refused by the domain: one batch."""
        form = await request.form()
        if form.get("confirm") != "1":
            return await self._confirm_assign(request, actor, order_id)
        try:
            batch = await decisions.assign_order(actor, order_id, utcnow())
        except ValidationFailed as refused:
            return await self._answer(request, actor, order_id, refused)
        return await self._answer(
            request,
            actor,
            order_id,
            done=lambda o: (
                f"Assigned {o['quantity']:,} × {o['product_name']} to {o['company_name']}, "
                f"running until {batch['ends_at']:%d %b %Y}"
                + (f": a renewal, {batch['term'].said_done}." if batch["term"].renewed else "")
                + (f", {batch['term'].said_done}." if batch["term"].cotermed else "")
                + ("." if not batch["term"].renewed and not batch["term"].cotermed else "")
            ),
        )

    @post("/{order_id:int}/decline", name="orders.decline")
    async def decline(self, request: HTMXRequest, actor: CurrentActor, order_id: FromPath[int]) -> Template | Redirect:
        form = await request.form()
        try:
            await decisions.decline_order(actor, order_id, str(form.get("reason", "")), utcnow())
        except ValidationFailed as refused:
            return await self._answer(request, actor, order_id, refused)
        return await self._answer(
            request,
            actor,
            order_id,
            done=lambda o: f"Declined the order of {o['quantity']:,} licenses from {o['company_name']}.",
        )

    async def _confirm_assign(self, request: HTMXRequest, actor, order_id: int) -> Template | Redirect:
        try:
            preview = await decisions.assign_preview(actor, order_id, utcnow())
        except ValidationFailed as refused:
            return await self._answer(request, actor, order_id, refused)
        in_row = bool(request.htmx) and request.htmx.target == f"order-{order_id}"
        return render(
            request,
            "partials/orders/_assign_confirm.html" if in_row else "pages/orders_assign_confirm.html",
            {"o": preview.order, "ends_at": preview.ends_at, "term": preview.term, "offer": preview.offer},
        )

    async def _answer(
        self,
        request: HTMXRequest,
        actor,
        order_id: int,
        refused: ValidationFailed | None = None,
        done: Callable[[order_list.OrderRow], str] | None = None,
    ) -> Template | Redirect:
        """htmx posts from the row menu: the row, swapped in place. A plain form
        (the order's page, no JavaScript): back to the list with what was done,
        or the order's page again saying why not."""
        order = await order_list.get_order(actor, order_id)
        if request.htmx and request.htmx.target == f"order-{order_id}":
            # 200 even when refused: htmx swaps only successful answers, and the row says why.
            message = str(refused) if refused else None
            return render(
                request,
                "partials/orders/_rows.html",
                # Said in the page's live region, and focus stays on the row (static/portal.js).
                {"rows": [order], "message": message, "announce": done(order) if done else None, "focus": "menu"},
            )
        if refused is None:
            if done:
                flash(request, done(order))
            return Redirect(request.app.route_reverse("orders.requested_orders"))
        return render(
            request,
            "pages/order_actions.html",
            {"o": order, "message": str(refused)},
            status_code=409 if isinstance(refused, InvalidTransition) else 400,
        )
