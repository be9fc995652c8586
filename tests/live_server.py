"""`portal serve` in a subprocess and a Chromium, for browser tests; the
fixtures are registered once, in conftest.py, so every browser test module
shares one server and one browser.

The server gets a database of its own: the suite's autouse fixtures truncate
the test database after every test, which would pull the demo data out from
under a browser mid-test."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from portal.demo_data import DEMO_PASSWORD
from tests import conftest
from tests.redis_server import free_port
from tests.support import create_pg_database, drop_pg_database

PORTAL = Path(sys.executable).with_name("portal")
# Debian's chromium; Playwright cannot download its own here. Without the
# background-networking flags it keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 60


@dataclass(frozen=True)
class LiveServer:
    url: str
    database_url: str

    async def company_id(self, name: str) -> int:
        """Read straight from the server's database, so a test can learn an id the UI would not show it."""
        if self.database_url.startswith("sqlite:///"):
            with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as conn:
                (row,) = conn.execute("SELECT id FROM company WHERE name = ?", (name,)).fetchall()
            return row[0]
        conn = await asyncpg.connect(self.database_url)
        try:
            return await conn.fetchval("SELECT id FROM company WHERE name = $1", name)
        finally:
            await conn.close()


def _own_redis(test_url: str) -> tuple[str, str]:
    """The run's Redis server, other databases (queue, sessions): the in-process
    tests sign in from 127.0.0.1 too, and on a shared store their attempts
    would count against this server's sign-in limit."""
    parts = urlsplit(test_url)
    test_db = int(parts.path.strip("/") or 0)
    db = test_db - 2 if test_db >= 2 else test_db + 2
    return urlunsplit(parts._replace(path=f"/{db}")), urlunsplit(parts._replace(path=f"/{db + 1}"))


@pytest.fixture(scope="session", name="live_server")
async def live_server_fixture() -> AsyncIterator[LiveServer]:
    async with serving() as server:
        yield server


@asynccontextmanager
async def serving(extra_env: dict[str, str] | None = None, host: str = "127.0.0.1") -> AsyncIterator[LiveServer]:
    """`portal serve` on a free port with a database of its own; `extra_env`: more
    settings (the Stripe test serves with PAYMENT_PROCESSOR=stripe); `host`: the
    name in BASE_URL (passkeys need a domain name such as localhost, not an address)."""
    tmp = Path(tempfile.mkdtemp(prefix="portal-browser-"))
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "BASE_URL": f"http://{host}:{port}",
        "PORTAL_VAR_DIR": str(tmp / "var"),
        # Every browser test signs in from 127.0.0.1: more than a minute's worth of the default 10.
        "SIGN_INS_PER_MINUTE": "1000",
        **(extra_env or {}),
    }
    pg_db = None
    if conftest.ENGINE == "postgres":
        pg_db = f"portal_browser_{os.getpid()}_{port}"
        await create_pg_database(conftest.PG_SERVER, pg_db)
        env["DATABASE_URL"] = f"{conftest.PG_SERVER}/{pg_db}"
        env["REDIS_URL"], _ = _own_redis(os.environ["REDIS_URL"])
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'live.sqlite'}"
        env.pop("REDIS_URL", None)

    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(PORTAL), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = env["BASE_URL"]
    try:
        await _wait_until_healthy(proc, url, log_path)
        yield LiveServer(url=url, database_url=env["DATABASE_URL"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if pg_db:
            await drop_pg_database(conftest.PG_SERVER, pg_db)
        shutil.rmtree(tmp, ignore_errors=True)


async def _wait_until_healthy(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"portal serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"portal serve not healthy after {START_TIMEOUT} s:\n{log_path.read_text()}")


@pytest.fixture(scope="session", name="browser")
async def browser_fixture() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def new_page(browser: Browser, live_server: LiveServer) -> Page:
    """A page in a context of its own: its own cookies, so its own sign-in."""
    context = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    return await context.new_page()


async def sign_in(page: Page, email: str) -> None:
    await page.goto("/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
