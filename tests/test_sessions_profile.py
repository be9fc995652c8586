"""Sessions a manager controls: Profile lists them, signs out one or every
other; changing the password ends the others; idle and absolute lifetimes."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from portal.domain import sessions
from portal.domain.access import SessionCheck, load_actor
from portal.domain.clock import utcnow
from portal.tables.sign_in import UserSession
from tests.support import PASSWORD, post_form, sign_in
from tests.test_read_only import _credits, _read_only_manager

NEW = "a brand new secret"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@pytest.fixture
async def phone(app):
    headers = {"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Version/18.0 Safari/604.1"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000", headers=headers
    ) as c:
        yield c


def _signed_out(response: httpx.Response) -> bool:
    return response.status_code in (302, 303) and response.headers["location"].startswith("/login")


async def test_profile_lists_the_sessions_and_signs_out_one(client, phone, tree):
    email = tree.email("north")
    client.headers["user-agent"] = CHROME
    await sign_in(client, email)
    await sign_in(phone, email)
    profile = await client.get("/profile")
    rows = re.findall(r'<tr data-testid="session-row">(.*?)</tr>', profile.text, re.S)
    assert len(rows) == 2
    assert "Safari on iPhone" in rows[0] and "This session" not in rows[0]  # seen last, first
    assert "Chrome on Windows" in rows[1] and "This session" in rows[1]
    phone_session = (await UserSession.select(UserSession.id).order_by(UserSession.id, ascending=False).first())["id"]

    done = await post_form(client, "/profile", f"/profile/sessions/{phone_session}/end", {})
    assert done.headers["location"] == "/profile"
    assert _signed_out(await phone.get("/profile"))
    assert len(re.findall(r'data-testid="session-row"', (await client.get("/profile")).text)) == 1


async def test_a_manager_cannot_sign_out_another_managers_session(client, phone, tree):
    await sign_in(phone, tree.email("direct"))
    theirs = (await UserSession.select(UserSession.id).first())["id"]
    await sign_in(client, tree.email("north"))
    await post_form(client, "/profile", f"/profile/sessions/{theirs}/end", {})
    assert (await phone.get("/profile")).status_code == 200


async def test_sign_out_everywhere_else_keeps_this_session(app, client, phone, tree):
    email = tree.email("north")
    await sign_in(client, email)
    await sign_in(phone, email)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as third:
        await sign_in(third, email)
        await post_form(client, "/profile", "/profile/sessions/end-others", {})
        assert _signed_out(await phone.get("/profile"))
        assert _signed_out(await third.get("/profile"))
    assert "Every other session of yours is signed out." in (await client.get("/profile")).text
    assert (await client.get(f"/companies/{tree.north['id']}")).status_code == 200


async def test_changing_the_password_ends_every_other_session(client, phone, tree):
    email = tree.email("north")
    await sign_in(client, email)
    await sign_in(phone, email)
    wrong = await post_form(
        client, "/profile", "/profile/password", {"current": "not it", "password": NEW, "confirm": NEW}
    )
    assert wrong.status_code == 400 and "That is not your current password." in wrong.text
    weak = await post_form(
        client, "/profile", "/profile/password", {"current": PASSWORD, "password": "short", "confirm": "short"}
    )
    assert weak.status_code == 400 and "at least 10 characters" in weak.text
    assert (await phone.get("/profile")).status_code == 200  # nothing changed yet

    done = await post_form(
        client, "/profile", "/profile/password", {"current": PASSWORD, "password": NEW, "confirm": NEW}
    )
    assert done.headers["location"] == "/profile"
    assert _signed_out(await phone.get("/profile"))
    assert (await client.get("/profile")).status_code == 200
    client.cookies.clear()
    refused = await post_form(client, "/login", "/login", {"email": email, "password": PASSWORD})
    assert refused.status_code == 400
    await sign_in(client, email, NEW)


async def test_a_read_only_manager_changes_their_own_password(client, tree):
    """Read-only is about the company's data, not the manager's own account."""
    await _credits(tree.north, 1)
    viewer = await _read_only_manager(tree)
    await sign_in(client, viewer["email"])
    done = await post_form(
        client, "/profile", "/profile/password", {"current": PASSWORD, "password": NEW, "confirm": NEW}
    )
    assert done.status_code in (302, 303) and done.headers["location"] == "/profile"
    # Company data stays read-only.
    assert (await post_form(client, "/profile", "/profile", {"reminders": "on"})).status_code == 403


async def test_a_session_ends_when_idle_or_too_old(tree):
    user = tree.managers["north"]
    now = utcnow()
    row = await sessions.open_session(user["id"], "Chrome on Linux", "127.0.0.1", "password", now)
    lifetimes = sessions.Lifetimes(idle=timedelta(minutes=30), absolute=timedelta(hours=8))

    async def actor_at(at):
        return await load_actor(user["id"], None, 0, SessionCheck(row, at, lifetimes))

    assert await actor_at(now + timedelta(minutes=29)) is not None  # seen: last seen moves on
    assert await actor_at(now + timedelta(minutes=58)) is not None
    assert await actor_at(now + timedelta(minutes=89)) is None  # idle for 31 minutes
    fresh = await sessions.open_session(user["id"], "Chrome on Linux", "127.0.0.1", "password", now)
    for minutes in range(20, 8 * 60, 20):  # busy all day
        assert await load_actor(user["id"], None, 0, SessionCheck(fresh, now + timedelta(minutes=minutes), lifetimes))
    assert await load_actor(user["id"], None, 0, SessionCheck(fresh, now + timedelta(hours=8), lifetimes)) is None
    # Another user's session row is no session of this user's.
    other = await sessions.open_session(tree.managers["direct"]["id"], "", "", "password", now)
    assert await load_actor(user["id"], None, 0, SessionCheck(other, now, lifetimes)) is None


async def test_signing_out_ends_the_sessions_row(client, tree):
    await sign_in(client, tree.email("north"))
    await post_form(client, "/profile", "/logout", {})
    row = await UserSession.select(UserSession.ended_at).first()
    assert row["ended_at"] is not None
