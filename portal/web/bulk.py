"""Bulk actions: the confirmation page (what will change, before), the run's
page with its progress bar and then its summary per customer (what changed,
after). The selection comes from the Admin Dashboard's customer table, its
"Ending in the next 30 days" rows, or Requested Orders' rows, each a form of
GET fields; "every match" sends the list's search or filters instead of ids."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.datastructures import MultiDict
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain.bulk import runs
from portal.domain.bulk.selection import ACTIONS, SHOWN, Selection, plan
from portal.domain.clock import utcnow
from portal.domain.dashboard import figures
from portal.domain.errors import ValidationFailed
from portal.domain.orders import order_list
from portal.jobs.bulk import FAN_OUT, job_id
from portal.web.forms import text, to_int
from portal.web.render import render
from portal.web.session import CurrentActor

# At most this many ticked ids are read from one form (a page of each list is 25 rows).
MAX_TICKED = 500
# Which form fields say the selection, posted back by the confirmation.
_CARRIED = ("action", "scope", "every_match", "q", "alerts_only", *order_list.ORDER_FILTERS.by_name)


def _ids(params: Any, name: str) -> tuple[int, ...]:
    values = [to_int(v) for v in params.getall(name, [])[:MAX_TICKED]]
    return tuple(sorted({v for v in values if v is not None and v > 0}))


def _selection(params: Any) -> Selection:
    every = str(params.get("every_match", "")) == "1"
    orders_scope = params.get("scope") == "orders"
    return Selection(
        action=text(params.get("action"), 20),
        companies=_ids(params, "company"),
        batches=_ids(params, "batch"),
        orders=_ids(params, "order"),
        every_match=every,
        query=figures.CustomerQuery(q=text(params.get("q"), 100), alerts_only=params.get("alerts_only") == "1"),
        order_filters=order_list.parse_filters(params) if every and orders_scope else None,
    )


def _carried(params: Any) -> list[tuple[str, str]]:
    """The selection's fields, as hidden inputs of the confirmation's form."""
    fields = [(name, text(params.get(name), 100)) for name in _CARRIED if params.get(name)]
    for name in ("company", "batch", "order"):
        fields += [(name, str(i)) for i in _ids(params, name)]
    return fields


def _back(params: Any) -> str:
    if params.get("scope") == "orders":
        return "/licences/orders"
    return "/dashboard#customers"


class BulkController(Controller):
    path = "/bulk"

    async def _confirm_page(self, request: HTMXRequest, actor, params: Any, message: str = "", status: int = 200):
        selection = _selection(params)
        context: dict[str, Any] = {
            "actions": ACTIONS,
            "action": selection.action,
            "carried": _carried(params),
            "back": _back(params),
            "key": runs.new_key(),
            "message": message,
            "plan": None,
            "shown": SHOWN,
        }
        try:
            context["plan"] = await plan(actor, selection, utcnow())
        except ValidationFailed as refused:
            context["message"] = message or " ".join(refused.errors.values())
            status = 400
        return render(request, "pages/bulk_confirm.html", context, status_code=status)

    @get("/confirm", name="bulk.confirm")
    async def confirm(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        """What the action will change, before anything is done."""
        return await self._confirm_page(request, actor, request.query_params)

    @post("/", name="bulk.start")
    async def start(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        form = await request.form()
        params = MultiDict(form.multi_items())
        try:
            started = await runs.start_run(actor, _selection(params), text(form.get("key"), 80), utcnow())
        except ValidationFailed as refused:
            message = " ".join(refused.errors.values())
            return await self._confirm_page(request, actor, params, message, status=400)
        if started.created and started.queued:
            for slot in range(FAN_OUT):
                await request.app.state.jobs.enqueue(
                    "run_bulk", started.run_id, slot, job_id=job_id(started.run_id, slot)
                )
        return Redirect(request.app.route_reverse("bulk.show", run_id=started.run_id), status_code=303)

    async def _context(self, actor, run_id: int) -> dict[str, Any]:
        run = await runs.get_run(actor, run_id)
        progress = await runs.progress(run["id"])
        done = run["status"] == "done" and not progress.running
        return {
            "run": run,
            "progress": progress,
            "done": done,
            "customers": await runs.summary(run["id"]) if done else [],
        }

    @get("/{run_id:int}", name="bulk.show")
    async def show(self, request: HTMXRequest, actor: CurrentActor, run_id: FromPath[int]) -> Template:
        return render(
            request,
            "pages/bulk_run.html",
            await self._context(actor, run_id),
            fragments={"bulk-progress": "partials/bulk/_progress.html"},
        )

    @get("/{run_id:int}/progress", name="bulk.progress")
    async def progress(self, request: HTMXRequest, actor: CurrentActor, run_id: FromPath[int]) -> Template:
        return render(request, "partials/bulk/_progress.html", await self._context(actor, run_id))

    @post("/{run_id:int}/resume", name="bulk.resume")
    async def resume(self, request: HTMXRequest, actor: CurrentActor, run_id: FromPath[int]) -> Redirect:
        """A job lost with its process (no Redis, a restart) is sent again; items apply once whatever runs them."""
        run = await runs.get_run(actor, run_id)
        if run["status"] != "done":
            again = f"{job_id(run['id'], 0)}:again:{utcnow():%Y%m%dT%H%M%S}"
            await request.app.state.jobs.enqueue("run_bulk", run["id"], 0, job_id=again)
        return Redirect(request.app.route_reverse("bulk.show", run_id=run["id"]), status_code=303)
