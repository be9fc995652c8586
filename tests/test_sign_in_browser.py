"""Chromium, 390 px wide, keyboard only: "Forgot password?" from the sign-in
page to a new password. Signs nobody in (the live server allows 10 sign-ins a
minute per address, shared by all browser tests), and uses a demo manager no
other browser test signs in as."""

from __future__ import annotations

import re
import sqlite3

import asyncpg
import pytest
from playwright.async_api import expect

from tests.live_server import LiveServer

pytestmark = pytest.mark.browser

MANAGER = "sam.lee@summit-secure.example"
_LINK = re.compile(r"/set-password/[A-Za-z0-9_-]+")


async def _reset_link(live_server: LiveServer) -> str:
    sql = "SELECT body FROM outbox_email WHERE kind = 'password_reset' AND to_email = {} ORDER BY id DESC LIMIT 1"
    if live_server.database_url.startswith("sqlite:///"):
        with sqlite3.connect(live_server.database_url.removeprefix("sqlite:///")) as conn:
            (body,) = conn.execute(sql.format("?"), (MANAGER,)).fetchone()
    else:
        conn = await asyncpg.connect(live_server.database_url)
        try:
            body = await conn.fetchval(sql.format("$1"), MANAGER)
        finally:
            await conn.close()
    return _LINK.search(body).group(0)


async def test_forgot_password_by_keyboard_on_a_phone(browser, live_server: LiveServer):
    context = await browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = await context.new_page()
    try:
        await page.goto("/login")
        forgot = page.get_by_role("link", name="Forgot password?")
        await expect(forgot).to_be_visible()
        # From the e-mail field (focused on load): password, "Sign in", then the link.
        for _ in range(3):
            await page.keyboard.press("Tab")
        await expect(forgot).to_be_focused()
        await page.keyboard.press("Enter")

        await expect(page.get_by_role("heading", name="Forgot password?")).to_be_visible()
        await expect(page.get_by_label("E-mail")).to_be_focused()
        await page.keyboard.type(MANAGER)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Check your mailbox")).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390

        await page.goto(await _reset_link(live_server))
        await page.get_by_label("New password").fill("          ")
        await page.get_by_label("Repeat it").fill("          ")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("alert")).to_contain_text("not only spaces")
        await page.get_by_label("New password").fill("summit secure sam 2026")
        await page.get_by_label("Repeat it").fill("summit secure sam 2026")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{live_server.url}/login")
        await expect(page.get_by_test_id("flash")).to_have_text("Your password is set. Sign in with it.")
    finally:
        await context.close()
