"""Structured logs: one line per request with its id, who asked and how it
ended; the id in the X-Request-ID header; JSON that parses, text on one line."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from litestar import Litestar, Request, get

from portal.logs import JsonFormatter, TextFormatter, logging_config
from portal.web.request_log import REQUEST_LOG, log_unrouted
from tests.support import sign_in


def request_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "portal.web.request"]


async def test_a_request_logs_one_line_with_its_id_and_status(client, caplog):
    caplog.set_level(logging.INFO, logger="portal.web.request")
    response = await client.get("/healthz")
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) >= 8
    [line] = request_lines(caplog)
    assert (line.request_id, line.method, line.path, line.status) == (request_id, "GET", "/healthz", 200)
    assert line.route == "/healthz"
    assert line.duration_ms >= 0


async def test_each_request_gets_its_own_id(client):
    first, second = await client.get("/healthz"), await client.get("/healthz")
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_a_sane_incoming_request_id_is_kept_and_an_odd_one_replaced(client, caplog):
    caplog.set_level(logging.INFO, logger="portal.web.request")
    kept = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c21-0001"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a9c21-0001"
    for odd in ("short", "has spaces in it", "x" * 65, 'quote"injection', "<script>alert(1)</script>"):
        replaced = await client.get("/healthz", headers={"X-Request-ID": odd})
        assert replaced.headers["X-Request-ID"] != odd
    assert [r.request_id for r in request_lines(caplog)][0] == "lb-7f3a9c21-0001"


async def test_a_signed_in_request_names_the_user_and_company(client, tree, caplog):
    await sign_in(client, tree.email("partner"))
    caplog.set_level(logging.INFO, logger="portal.web.request")
    caplog.clear()
    response = await client.get(f"/companies/{tree.north['id']}")
    assert response.status_code == 200
    [line] = request_lines(caplog)
    assert line.user_id == tree.managers["partner"]["id"]
    assert line.company_id == tree.partner["id"]
    assert line.route == "/companies/{company_id}"
    assert line.request_id == response.headers["X-Request-ID"]


async def test_an_error_answer_is_logged_with_its_status_and_id(client, tree, caplog):
    await sign_in(client, tree.email("partner"))
    caplog.set_level(logging.INFO, logger="portal.web.request")
    caplog.clear()
    response = await client.get(f"/companies/{tree.other['id']}")  # another tenant's company
    assert response.status_code == 404
    [line] = request_lines(caplog)
    assert (line.status, line.request_id) == (404, response.headers["X-Request-ID"])


async def test_the_id_is_in_the_request_state_before_the_handler_runs():
    """The 500 page shows request.state.request_id: it must be there while handlers run."""

    @get("/id", sync_to_thread=False)
    def show_id(request: Request) -> str:
        return request.state.request_id

    app = Litestar([show_id], middleware=[REQUEST_LOG], logging_config=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        response = await c.get("/id")
    assert response.text == response.headers["X-Request-ID"]


async def test_a_handler_that_crashes_is_logged_as_a_500_with_the_id(caplog):
    @get("/boom", sync_to_thread=False)
    def boom() -> str:
        raise RuntimeError("kaput")

    caplog.set_level(logging.INFO, logger="portal.web.request")
    app = Litestar([boom], middleware=[REQUEST_LOG], logging_config=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        response = await c.get("/boom")
    assert response.status_code == 500
    [line] = request_lines(caplog)
    assert (line.status, line.levelname, line.request_id) == (500, "ERROR", response.headers["X-Request-ID"])


def _record_with_exception() -> logging.LogRecord:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.getLogger("portal.test").makeRecord(
        "portal.test",
        logging.ERROR,
        __file__,
        1,
        "job failed: %s",
        ("send_mail",),
        exc_info,
        extra={"job_id": "abc123", "duration_ms": 4.5, "note": 'two words "quoted"'},
    )
    return record


def test_json_format_is_one_parseable_line_with_the_extra_fields():
    line = JsonFormatter().format(_record_with_exception())
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["event"] == "job failed: send_mail"
    assert (entry["level"], entry["logger"], entry["job_id"], entry["duration_ms"]) == (
        "ERROR",
        "portal.test",
        "abc123",
        4.5,
    )
    assert "ValueError: bad" in entry["exc"]
    assert entry["ts"].endswith("Z")


def test_text_format_is_one_readable_line():
    line = TextFormatter().format(_record_with_exception())
    assert "\n" not in line
    assert " ERROR portal.test: job failed: send_mail " in line
    assert "job_id=abc123" in line and "duration_ms=4.5" in line
    assert 'note="two words \\"quoted\\""' in line
    assert "exc=" in line and "ValueError: bad" in line


@pytest.mark.parametrize("fmt,formatter", [("json", JsonFormatter), ("text", TextFormatter)])
def test_log_format_picks_the_formatter(fmt, formatter):
    assert logging_config(fmt)["formatters"]["portal"]["()"] == f"portal.logs.{formatter.__name__}"


async def test_an_address_without_a_route_is_logged_with_an_id_too(caplog):
    """Litestar runs middleware only for routed requests; the before_send hook
    covers the router's own 404 and 405, once each, and leaves routed ones alone."""

    @get("/here", sync_to_thread=False)
    def here() -> str:
        return "ok"

    caplog.set_level(logging.INFO, logger="portal.web.request")
    app = Litestar([here], middleware=[REQUEST_LOG], before_send=[log_unrouted], logging_config=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        missing = await c.get("/wp-admin")
        wrong_method = await c.delete("/here")
        routed = await c.get("/here")
    lines = request_lines(caplog)
    assert [(r.path, r.status) for r in lines] == [("/wp-admin", 404), ("/here", 405), ("/here", 200)]
    ids = [missing.headers["X-Request-ID"], wrong_method.headers["X-Request-ID"], routed.headers["X-Request-ID"]]
    assert [r.request_id for r in lines] == ids
    assert [r.route for r in lines] == [None, None, "/here"]


def test_the_app_keeps_the_portals_log_configuration():
    """`portal serve` configures logging before uvicorn imports the app; building
    the app must not replace it (Litestar's default LoggingConfig would install
    its own root handler and format, losing JSON and every extra field)."""
    from portal.logs import configure_logging
    from portal.web.app import create_app

    handlers, level = logging.root.handlers[:], logging.root.level
    quiet = {name: logging.getLogger(name).level for name in ("arq.worker", "uvicorn.access")}
    try:
        configure_logging("json")
        create_app()
        assert [type(h.formatter) for h in logging.root.handlers] == [JsonFormatter]
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


async def test_a_body_over_the_limit_is_logged_with_the_413_the_client_got(client, tree, caplog):
    """The size limit is met while the CSRF check reads the form, outside the route's
    error handling: the app answers 413 after this middleware has returned."""
    await sign_in(client, tree.email("partner"))
    caplog.set_level(logging.INFO, logger="portal.web.request")
    caplog.clear()
    response = await client.post(
        "/companies",
        content=b"name=" + b"x" * 10_000_001,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    [line] = request_lines(caplog)
    assert (line.status, line.levelname, line.path) == (413, "INFO", "/companies")
    assert line.request_id == response.headers["X-Request-ID"]
    assert line.user_id == tree.managers["partner"]["id"]
    assert line.duration_ms >= 0
