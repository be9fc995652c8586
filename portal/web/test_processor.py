"""The built-in test processor's own card page, as Stripe Elements is Stripe's: the
billing pages show it in a frame; its form posts the card here, never to a billing
route; the answer hands a token back to the billing page (static/test-processor.js,
by postMessage), and the billing form posts only that token. The card's number and
code are checked and dropped here: nothing of them is stored or shown again.

Served only while the test processor is the one in use (portal/web/app.py)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Template

from portal.domain.billing.payments import TEST_CARDS, CardDetails, TestProcessor
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.services import Services
from portal.web.forms import text, to_int

PATH = "/test-processor/card"
# Framed by the portal's own billing pages only; its form posts to itself.
FRAME_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
_HEADERS = {"content-security-policy": FRAME_POLICY, "x-frame-options": "SAMEORIGIN"}


def _page(context: dict[str, Any], status_code: int = 200) -> Template:
    return Template(
        template_name="pages/test_processor_card.html",
        context={"cards": TEST_CARDS, "errors": {}, **context},
        status_code=status_code,
        headers=_HEADERS,
    )


class TestProcessorController(Controller):
    __test__ = False  # not a pytest class
    path = PATH

    @get("/", name="test_processor.card_form")
    async def card_form(self) -> Template:
        return _page({})

    @post("/", name="test_processor.take_card")
    async def take_card(self, request: Request, services: Services) -> Template:
        processor = services.processor
        assert isinstance(processor, TestProcessor), "served only with the test processor"
        form = await request.form()
        year = to_int(form.get("exp_year")) or 0
        if 0 < year < 100:
            year += 2000  # "28", as printed on the card
        try:
            saved = await processor.save_card(_card(form, year), now=utcnow())
        except ValidationFailed as refused:
            kept = {k: form.get(k, "") for k in ("exp_month", "exp_year")}
            return _page({"errors": refused.errors, "values": kept}, status_code=400)
        return _page({"saved": saved})


def _card(form: Any, year: int) -> CardDetails:
    return CardDetails(
        number=text(form.get("card_number"), 40),
        exp_month=to_int(form.get("exp_month")) or 0,
        exp_year=year,
        cvc=text(form.get("cvc"), 8),
    )
