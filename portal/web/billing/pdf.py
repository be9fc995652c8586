"""Invoices and credit notes as PDF: the document dict (portal/domain/billing/documents.py)
through templates/pdf/invoice.html and its stylesheet, laid out by WeasyPrint.

Laying out a page costs tens of milliseconds of CPU, so it runs in a worker thread,
a few at a time, never on the event loop. The document fetches nothing: every
URL (an image, a stylesheet) is refused, so no text in it can make the server
open a file or an address."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any
from weakref import WeakKeyDictionary

import anyio
from jinja2 import Environment
from litestar import Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Response

from portal.domain.billing import money
from portal.settings import PROJECT_DIR

TEMPLATE = "pdf/invoice.html"
STYLESHEET = PROJECT_DIR / "templates" / "pdf" / "invoice.css"
# Two layouts at once per process; more requests wait for a thread. One limiter per
# event loop: an anyio limiter belongs to the loop that made it.
LAYOUTS_AT_ONCE = 2
_limiters: WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = WeakKeyDictionary()


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(LAYOUTS_AT_ONCE)
    return limiter


# WeasyPrint is imported where a page is laid out: it loads pango (a Debian library) on
# import, and a machine without it should still serve every other page.


@cache
def _stylesheet() -> Any:
    from weasyprint import CSS

    return CSS(filename=str(STYLESHEET), url_fetcher=_no_fetching())


def _no_fetching() -> Any:
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols=())


def template_env(request: Request) -> Environment:
    """The app's Jinja environment: its filters (`day`) and template folder."""
    engine = request.app.template_engine
    assert isinstance(engine, JinjaTemplateEngine), "the app renders with Jinja"
    return engine.engine


def document_html(env: Environment, document: dict[str, Any]) -> str:
    return env.get_template(TEMPLATE).render(doc=document, money=money.format_money, rate=money.format_rate)


def _lay_out(html: str) -> bytes:
    from weasyprint import HTML

    pdf = HTML(string=html, url_fetcher=_no_fetching()).write_pdf(stylesheets=[_stylesheet()])
    assert pdf is not None, "write_pdf without a target returns the bytes"
    return pdf


async def pdf_bytes(env: Environment, document: dict[str, Any]) -> bytes:
    html = document_html(env, document)
    return await anyio.to_thread.run_sync(_lay_out, html, limiter=_limiter())


async def pdf_response(env: Environment, document: dict[str, Any]) -> Response[bytes]:
    """The PDF as a download named after the document ("INV-00012.pdf")."""
    return Response(
        await pdf_bytes(env, document),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{document["filename"]}"'},
    )
