"""Test setup. PORTAL_TEST_DB picks the engine (sqlite, the default, or postgres);
the environment is set before anything of the portal is imported, because
Piccolo binds tables to the engine of piccolo_conf at import time."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.redis_server import start_private_redis

ENGINE = os.environ.get("PORTAL_TEST_DB", "sqlite")
# The run's files (the SQLite database above all) in memory where Linux offers it: each
# test commits often, and a commit waiting for a disk's flush cost SQLite tests most of their time.
_SHM = Path("/dev/shm")
_tmp = Path(tempfile.mkdtemp(prefix="portal-test-", dir=_SHM if _SHM.is_dir() else None))
atexit.register(shutil.rmtree, _tmp, ignore_errors=True)  # registered first, so it runs after Redis has stopped
os.environ["PORTAL_VAR_DIR"] = str(_tmp / "var")
os.environ["SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ.pop("BASE_URL", None)
# Every run talks to a Redis server of its own (tests/redis_server.py).
REDIS = start_private_redis(_tmp / "redis")
os.environ["PORTAL_TEST_REDIS"] = f"{REDIS.url}/0"
if ENGINE == "postgres":
    PG_SERVER = os.environ.get("PORTAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
    PG_DB = f"portal_test_{os.getpid()}"
    os.environ["DATABASE_URL"] = f"{PG_SERVER}/{PG_DB}"
    os.environ["REDIS_URL"] = os.environ["PORTAL_TEST_REDIS"]
elif ENGINE == "sqlite":
    os.environ["DATABASE_URL"] = f"sqlite:///{_tmp / 'portal.sqlite'}"
    os.environ.pop("REDIS_URL", None)
else:
    raise pytest.UsageError(f"PORTAL_TEST_DB must be sqlite or postgres, not {ENGINE!r}")

from tests.live_server import browser_fixture, live_server_fixture  # noqa: E402, F401 (fixtures, registered once)
from tests.support import (  # noqa: E402
    create_pg_database,
    drop_pg_database,
    open_transactions,
    reset_tables,
    running,
    tally_drift,
)


def pytest_collection_modifyitems(config, items):
    """A test marked engine(name) runs in that engine's suite only (and is listed as deselected in the other)."""
    elsewhere = [item for item in items if (mark := item.get_closest_marker("engine")) and mark.args[0] != ENGINE]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in elsewhere]


def pytest_report_header(config):
    return f"portal: engine={ENGINE} database={os.environ['DATABASE_URL']} redis={os.environ.get('REDIS_URL')}"


@pytest.fixture(scope="session", autouse=True)
async def database():
    from portal import db

    if ENGINE == "postgres":
        await create_pg_database(PG_SERVER, PG_DB)
    await db.open_pool()
    await db.migrate()
    yield
    await db.close_pool()
    if ENGINE == "postgres":
        await drop_pg_database(PG_SERVER, PG_DB)


@pytest.fixture(autouse=True)
async def clean_state(database):
    """Each test starts with empty tables, an empty job queue and no sessions."""
    from portal.settings import get_settings

    settings = get_settings()
    if settings.redis_url:
        from redis.asyncio import Redis

        for url in (settings.redis_url, settings.sessions_redis_url):
            async with Redis.from_url(url) as redis:
                await redis.flushdb()
    yield
    # A transaction a test's code opened and never ended holds its connection: the pool
    # could never close, and the run would hang at its end instead of failing here.
    assert await open_transactions() == [], "a connection was left inside a transaction"
    # Every test's writes, whatever they were, must leave the tabs' counts right.
    assert await tally_drift() == [], "licence_tally disagrees with the users it counts"
    await reset_tables()


@pytest.fixture(scope="session")
def localstripe():
    """The run's own fake Stripe (tests/stripe_server.py), started the first time a test needs it."""
    from tests.stripe_server import start_localstripe

    return start_localstripe(_tmp / "localstripe")


@pytest.fixture
def processor():
    """The card processor the app is handed (a test file may override it with its own)."""
    from portal.domain.billing.payments import TestProcessor

    return TestProcessor()


@pytest.fixture
def services(processor):
    from portal.services import Services
    from tests.support import import_files_here

    return Services(processor=processor, import_files=import_files_here())


# Built apps of this test process, one per kind of card entry (the only part of the
# services an app bakes in: its routes and its Content-Security-Policy).
_APPS: dict = {}


@pytest.fixture
def app_settings(request):
    """The settings the app starts with: a test marked no_timers moves e-mails and
    renewals along itself, so the app runs none of the in-process timers."""
    import dataclasses

    from portal.settings import get_settings

    settings = get_settings()
    if request.node.get_closest_marker("no_timers"):
        settings = dataclasses.replace(settings, in_process_jobs=False)
    return settings


@pytest.fixture
async def app(services, app_settings):
    """The app, started for this test with its own services and empty counters. Built
    once per process: building one parses every handler's signature (~0.7 s on this
    machine), most of what a web test would otherwise cost."""
    from portal.settings import get_settings
    from portal.web.api_v1 import ApiLimits
    from portal.web.app import create_app

    built = _APPS.get(services.card_entry)
    if built is None:
        built = _APPS[services.card_entry] = create_app(sign_ins_per_minute=1000, services=services)
    built.state.services = services
    built.state.settings = app_settings
    built.state.api_limits = ApiLimits.of(get_settings())
    await built.state.throttle.close()  # in memory: forgets every count; on Redis, flushed with the db
    async with running(built) as app:
        yield app


@pytest.fixture
async def client(app):
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c:
        yield c


@pytest.fixture
async def tree():
    from tests.factories import build_tree

    return await build_tree()


# --- CI: every test must run; count what ran on the real services ----------------

_RAN: dict[str, int] = {"postgresql": 0, "redis": 0, "browser": 0}


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        if ENGINE == "postgres":
            _RAN["postgresql"] += 1
        for mark in ("redis", "browser"):
            if mark in report.keywords:
                _RAN[mark] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    redis = "every app test on Redis sessions and the arq queue" if ENGINE == "postgres" else "in-process jobs"
    terminalreporter.write_line(
        f"portal [{ENGINE}]: passed on postgresql={_RAN['postgresql']}, with an arq worker on redis={_RAN['redis']}, "
        f"in chromium={_RAN['browser']} ({redis})"
    )
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") and skipped:
        terminalreporter.write_line(f"CI: {len(skipped)} test(s) skipped; every test must run in CI.", red=True)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") and reporter and reporter.stats.get("skipped"):
        session.exitstatus = 1
