"""The renewal pipeline page (in money) and its CSV, linked from the Admin Dashboard."""

from __future__ import annotations

from datetime import timedelta

from litestar import Controller, get
from litestar.params import FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Response, Template

from portal.domain.access import require_partner_manager
from portal.domain.clock import utcnow
from portal.domain.dashboard import pipeline
from portal.domain.imports.export import csv_text
from portal.web.render import render
from portal.web.session import CurrentActor

PERIOD_LABELS = {"month": "Month", "week": "Week"}
STATE_LABELS = {"renewed": "Renewed", "requested": "Renewal requested", "lapsed": "Lapsed", "open": "Not renewed yet"}
CSV_HEADER = (
    "Period starts",
    "Period ends",
    "Currency",
    "Batches ending",
    "Seats ending",
    "Value ending",
    *(f"{label} ({what})" for label in STATE_LABELS.values() for what in ("seats", "value")),
)


def _period(period: str) -> str:
    return period if period in pipeline.PERIODS else "month"


def _last_day(p: pipeline.Period) -> str:
    return f"{p.end - timedelta(days=1):%Y-%m-%d}"


class PipelineController(Controller):
    path = "/dashboard/pipeline"

    @get("/", name="pipeline.page")
    async def page(
        self, request: HTMXRequest, actor: CurrentActor, period: FromQuery[str] = "month", page: FromQuery[int] = 1
    ) -> Template:
        now, period = utcnow(), _period(period)
        return render(
            request,
            "pages/pipeline.html",
            {
                "period": period,
                "period_labels": PERIOD_LABELS,
                "state_labels": STATE_LABELS,
                "periods": await pipeline.pipeline(actor, period, now),
                "horizons": await pipeline.horizons(actor, now),
                "rates": await pipeline.renewal_rates(actor, now, page),
                "now": now,
            },
            fragments={"rate-results": "partials/dashboard/_renewal_rates.html"},
        )

    @get("/pipeline.csv", name="pipeline.csv")
    async def csv(self, actor: CurrentActor, period: FromQuery[str] = "month") -> Response:
        require_partner_manager(actor)  # refused before the first byte goes out
        periods = await pipeline.pipeline(actor, _period(period), utcnow())
        return Response(
            "\ufeff" + csv_text(_csv_rows(periods)),  # the BOM: Excel reads UTF-8
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="renewal-pipeline-by-{_period(period)}.csv"'},
        )


def _csv_rows(periods: list[pipeline.Period]) -> list[tuple]:
    """One row per period and currency (a period with nothing ending: one row of zeros)."""
    rows: list[tuple] = [CSV_HEADER]
    for p in periods:
        for currency in sorted(p.by_currency) or [pipeline.DEFAULT_CURRENCY]:
            ending = p.ending(currency)
            cells: list[object] = [f"{p.start:%Y-%m-%d}", _last_day(p), currency, ending.batches, ending.seats]
            cells.append(_amount(ending.value, currency))
            for state in STATE_LABELS:
                figures = p.of(state, currency)
                cells += [figures.seats, _amount(figures.value, currency)]
            rows.append(tuple(cells))
    return rows


def _amount(money: pipeline.Money, currency: str) -> str:
    cents = dict(money.cents).get(currency, 0)
    return f"{cents // 100}.{cents % 100:02d}"
