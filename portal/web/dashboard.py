"""Admin Dashboard: the partner's customers with what needs doing, the renewal
forecast, the batches behind its bars, "Renew same quantity", and a customer's
licence summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jinja2 import Environment
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from markupsafe import Markup

from portal.domain import companies, forecast
from portal.domain.access import Actor
from portal.domain.clock import utcnow
from portal.domain.dashboard import figures, pipeline, same_quantity, wing_batches
from portal.domain.dashboard.alerts_and_limits import save_alerts_and_limits
from portal.domain.dashboard.customer_summary import customer_summary
from portal.domain.dashboard.kept import Kept
from portal.domain.errors import ValidationFailed
from portal.services import Services
from portal.web.flash import flash
from portal.web.forms import text, to_date, to_int
from portal.web.redirects import local_path
from portal.web.render import render
from portal.web.session import CurrentActor

# Where each figure of the customer table leads, inside Manage Company.
FIGURE_TABS = {
    "expired": "expired",
    "expiring": "active",
    "free": "active",
    "pending": "orders",
    "unlicensed": "unlicensed",
}
# The tabs whose users wait for a seat: where "Allocate now" opens Select All.
ALLOCATE_TABS = ("expired", "unlicensed")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the week, in words
    href: str
    tick: str  # the axis label under it, every few weeks ("" between)


CHART_HEIGHT, CHART_TOP, BAR_WIDTH, BAR_GAP, LEFT = 150, 20, 22, 6, 8


def chart(weeks: list[forecast.Week], field: str) -> dict:
    """Bars of the weeks' seats, drawn as SVG on the server: positions here, shapes in the template."""
    top = max((w.seats for w in weeks), default=0) or 1
    bars = []
    for k, week in enumerate(weeks):
        height = round(week.seats / top * CHART_HEIGHT, 1)
        last_day = week.end.date().toordinal() - 1
        bars.append(
            Bar(
                x=LEFT + k * (BAR_WIDTH + BAR_GAP),
                y=CHART_TOP + CHART_HEIGHT - height,
                width=BAR_WIDTH,
                height=height,
                value=week.seats,
                label=f"{week.start:%d %b} – {datetime.fromordinal(last_day):%d %b %Y}",
                href=f"/dashboard/batches?field={field}&start={week.start:%Y-%m-%d}&end={week.end:%Y-%m-%d}",
                tick=f"{week.start:%d %b}" if k % 4 == 0 else "",
            )
        )
    width = LEFT * 2 + len(weeks) * (BAR_WIDTH + BAR_GAP)
    return {"bars": bars, "width": width, "height": CHART_TOP + CHART_HEIGHT + 24, "base": CHART_TOP + CHART_HEIGHT}


def _bool(value: object) -> bool:
    return str(value).lower() in ("1", "true", "on", "yes")


class DashboardController(Controller):
    @get("/dashboard")
    async def dashboard(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        services: NamedDependency[Services],
        q: FromQuery[str] = "",
        sort: FromQuery[str] = figures.DEFAULT_SORT,
        dir: FromQuery[str] = "",
        alerts_only: FromQuery[str] = "",
        after: FromQuery[str] = "",
        before: FromQuery[str] = "",
        per: FromQuery[str] = "",
    ) -> Template | Redirect:
        if not actor.is_partner_manager:
            return Redirect(f"/companies/{actor.company_id}")
        query = _query(q, sort, dir, alerts_only, after, before, per)
        if request.htmx and request.htmx.target == "customer-results":
            listing = await figures.customer_figures(actor, query, utcnow())
            return render(request, "partials/dashboard/_customers.html", {"query": query, "listing": listing})
        return render(
            request, "pages/dashboard.html", await _page(request, actor, services.dashboard_kept, query, utcnow())
        )

    @post("/dashboard/settings")
    async def save_settings(
        self, request: HTMXRequest, actor: CurrentActor, services: NamedDependency[Services]
    ) -> Template | Redirect:
        form = await request.form()
        entered = {name: text(form.get(name), 20) for name in ("low_seat_threshold", "max_order_quantity")}
        now = utcnow()
        try:
            said = await save_alerts_and_limits(actor, now=now, **entered)
        except ValidationFailed as refused:
            context = await _page(request, actor, services.dashboard_kept, figures.CustomerQuery(), now)
            context |= {"settings_errors": refused.errors, "settings_values": entered}
            return render(request, "pages/dashboard.html", context, status_code=400)
        flash(request, said)
        return Redirect("/dashboard#settings", status_code=303)

    @post("/dashboard/open")
    async def open_figure(self, request: Request, actor: CurrentActor) -> Redirect:
        """A figure of the customer table ("<customer id>:<figure>"): Manage Company,
        landing on the tab behind it; "Allocate now" ("<id>:allocate-<tab>") lands
        on that tab's Select All, whose "Take seats from" proposes the batch."""
        form = await request.form()
        company_id, _, figure = str(form.get("open", "")).partition(":")
        company = await companies.enter_manage_mode(actor, to_int(company_id) or 0, utcnow())
        request.session["managing_id"] = company["id"]
        if figure.startswith("allocate-"):
            tab = figure.removeprefix("allocate-")
            tab = tab if tab in ALLOCATE_TABS else "expired"
            return Redirect(f"/companies/{company['id']}/licences/select-all?tab={tab}")
        tab = FIGURE_TABS.get(figure, "expired")
        return Redirect(f"/companies/{company['id']}/licences?tab={tab}")

    @get("/dashboard/batches")
    async def batches(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        field: FromQuery[str] = "ends_at",
        start: FromQuery[str] = "",
        end: FromQuery[str] = "",
        page: FromQuery[int] = 1,
    ) -> Template:
        """The batches behind a bar of the forecast: ending (or assigned) between two days."""
        now = utcnow()
        first, last = to_date(start), to_date(end)
        if first is None or last is None or last <= first:
            raise ValidationFailed({"start": "Choose a start day before the end day (YYYY-MM-DD)."})
        since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
        until = datetime.combine(last, datetime.min.time(), tzinfo=now.tzinfo)
        listing = await wing_batches.batches_between(actor, field, since, until, now, page)
        base = f"/dashboard/batches?field={field}&start={first}&end={last}&"
        return render(
            request,
            "pages/dashboard_batches.html",
            {
                "listing": listing,
                "field": field,
                "since": since,
                "until": until,
                "last_day": datetime.fromordinal(until.toordinal() - 1),
                "base": base,
                "back": f"{base}page={listing.number}",
                "now": now,
            },
            fragments={"batch-results": "partials/dashboard/_batches.html"},
        )

    @get("/dashboard/batches/{batch_id:int}/renew")
    async def renew_confirm(
        self, request: HTMXRequest, actor: CurrentActor, batch_id: FromPath[int], back: FromQuery[str] = ""
    ) -> Template:
        """ "Renew same quantity": what it will do, before it does it."""
        now = utcnow()
        try:
            offer = await same_quantity.renewal_offer(actor, batch_id, now)
        except ValidationFailed as refused:
            return _refused(request, refused, local_path(back))
        return render(request, "pages/dashboard_renew.html", {"offer": offer, "back": local_path(back), "now": now})

    @post("/dashboard/batches/{batch_id:int}/renew")
    async def renew(self, request: HTMXRequest, actor: CurrentActor, batch_id: FromPath[int]) -> Template | Redirect:
        form = await request.form()
        back = local_path(str(form.get("back", "")))
        now = utcnow()
        try:
            done = await same_quantity.renew_same_quantity(actor, batch_id, now)
        except ValidationFailed as refused:
            return _refused(request, refused, back)
        offer = done["offer"]
        said = f"{offer['quantity']:,} × {offer['product_name']} for {offer['company_name']}"
        if done["batch"]:
            flash(request, f"Renewed: {said}, assigned, {done['batch']['term'].said_done}.")
        else:
            flash(
                request,
                f"Requested: {said}. Your account manager assigns it under Requested Orders; "
                f"assigned, it {offer['term'].said}.",
            )
        return Redirect(back or "/dashboard")

    @get("/companies/{company_id:int}/summary")
    async def customer_summary(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        """A customer's licence summary, the fragment the company page shows first."""
        summary = await customer_summary(actor, company_id, utcnow())
        return render(request, "partials/dashboard/_customer_summary.html", {"summary": summary})


async def _page(
    request: Request, actor: Actor, kept: Kept, query: figures.CustomerQuery, now: datetime
) -> dict[str, Any]:
    """Everything the Admin Dashboard shows on its first screen, without JavaScript.
    The wing's tree, the forecast, the horizons and "Ending in the next 30 days" are
    kept under the wing's version (see portal.domain.dashboard.kept), which the table's statement reads."""
    listing = await figures.customer_figures(actor, query, now)
    tree = kept.get(("tree", actor.company_path, listing.version), now) if listing.version else None
    if tree is None:
        tree = await companies.wing_tree(actor)
        if listing.version:
            kept.put(("tree", actor.company_path, listing.version), tree)
    soon, more_soon = await wing_batches.ending_soon(actor, now, kept=kept, version=listing.version)
    return {
        "query": query,
        "per_page_choices": figures.PER_PAGE_CHOICES,
        "listing": listing,
        "settings": listing.settings,
        "settings_errors": {},
        "settings_values": {},
        "tree": tree,
        # Everything under the wing but the actor's own company: the tree's nodes and their customers.
        "company_total": len(tree) - 1 + sum(node["customers"] for node in tree),
        "ending_soon": soon,
        "more_ending_soon": more_soon,
        # Whole days, today through the 30th day after it: every batch of the list is among them.
        "ending_soon_href": f"/dashboard/batches?field=ends_at&start={now:%Y-%m-%d}"
        f"&end={now + figures.SOON + timedelta(days=1):%Y-%m-%d}",
        "forecast_html": await _forecast(request, actor, kept, listing.version, now),
        "horizons": await pipeline.horizons(actor, now, kept=kept, version=listing.version),
    }


async def _forecast(request: Request, actor: Actor, kept: Kept, version: str, now: datetime) -> Markup:
    """The forecast's charts and tables: counted (two grouped statements over the
    wing's batches, the page's costliest) only when the version or the day changed
    (the day moves the weeks' bounds; the part is dropped when it ends)."""
    today = forecast.ahead_bounds(now, 0)[0]
    key = ("forecast", actor.company_path, version, today)
    html = kept.get(key, now) if version else None
    if html is None:
        ending, assigned = await forecast.both_charts(actor, now)
        html = _forecast_html(_jinja(request), ending, assigned)
        if version:
            kept.put(key, html, today + timedelta(days=1))
    return html


def _jinja(request: Request) -> Environment:
    engine = request.app.template_engine
    assert isinstance(engine, JinjaTemplateEngine), "the app renders with Jinja"
    return engine.engine


def _forecast_html(env: Environment, ending: list[forecast.Week], assigned: list[forecast.Week]) -> Markup:
    """The forecast's charts and tables (its 34 bars and two tables were a third
    of the page's template time: rendered once per kept forecast)."""
    template = env.get_template("partials/dashboard/_forecast.html")
    return Markup(
        template.render(
            ending=ending,
            assigned=assigned,
            ending_chart=chart(ending, "ends_at"),
            assigned_chart=chart(assigned, "starts_at"),
        )
    )


def _query(q: str, sort: str, dir: str, alerts_only: str, after: str, before: str, per: str) -> figures.CustomerQuery:
    sort = sort if sort in figures.SORTS else figures.DEFAULT_SORT
    # Numbers read largest first, names from A.
    descending = dir != "asc" if sort != "name" else dir == "desc"
    per_page = to_int(per[:4])
    return figures.CustomerQuery(
        q=text(q, 100),
        sort=sort,
        descending=descending,
        alerts_only=_bool(alerts_only),
        after=_cursor(after),
        before=_cursor(before),
        per_page=per_page if per_page in figures.PER_PAGE_CHOICES else figures.PER_PAGE,
    )


def _cursor(value: str) -> int | None:
    """A customer's id, as the pager's links carry it; anything else is no cursor (the first page)."""
    number = to_int(value[:12])
    return number if number is not None and 0 < number < 2**31 else None


def _refused(request: HTMXRequest, refused: ValidationFailed, back: str) -> Template:
    message = " ".join(refused.errors.values())
    return render(
        request, "pages/dashboard_renew.html", {"offer": None, "message": message, "back": back}, status_code=409
    )
