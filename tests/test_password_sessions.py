"""A new password ends the sessions opened before it, and only the newest
set-password link works, until its owner signs in."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from portal.domain import sign_in as signing
from portal.domain import users
from portal.domain.errors import NotFound
from portal.tables import OutboxEmail, User
from portal.web.throttle import MemoryCounter
from tests.factories import T0
from tests.support import PASSWORD, post_form, sign_in, texts_as_sent

_LINK = re.compile(r"http://127\.0\.0\.1:8000(/set-password/[A-Za-z0-9_-]+)")
NEW = "a brand new secret"


@pytest.fixture
async def other_client(app):
    """A second browser on the same portal: the thief's, or the owner's other device."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c:
        yield c


async def _reset_links(client, email: str, count: int = 1) -> list[str]:
    for _ in range(count):
        await post_form(client, "/forgot-password", "/forgot-password", {"email": email})
    return [_LINK.search(text).group(1) for text in await texts_as_sent(OutboxEmail.kind == "password_reset")]


async def _set(client, path: str, password: str = NEW) -> httpx.Response:
    return await post_form(client, path, path, {"password": password, "confirm": password})


async def _try_set(client, path: str) -> httpx.Response:
    """Post a new password to a link whose page no longer shows the form."""
    return await post_form(client, "/login", path, {"password": NEW, "confirm": NEW})


def _signed_out(response: httpx.Response) -> bool:
    return response.status_code in (302, 303) and response.headers["location"].startswith("/login")


async def test_a_session_opened_before_a_reset_is_signed_out_by_it(app, client, other_client, tree):
    email = tree.email("north")
    company = f"/companies/{tree.north['id']}"
    await sign_in(other_client, email)  # the session a thief copied
    stolen_id = other_client.cookies.get("session", domain="127.0.0.1")
    assert (await other_client.get(company)).status_code == 200

    (link,) = await _reset_links(client, email)
    done = await _set(client, link)
    assert done.status_code in (302, 303) and done.headers["location"] == "/login"

    answer = await other_client.get(company)
    assert _signed_out(answer), answer.status_code
    # The ended session is gone from the store, so replaying its id later finds nothing either.
    assert await app.stores.get("sessions").get(stolen_id) is None
    other_client.cookies.set("session", stolen_id, domain="127.0.0.1")
    assert _signed_out(await other_client.get(company))

    # The owner signs in with the new password, and that session works.
    await sign_in(client, email, NEW)
    assert (await client.get(company)).status_code == 200
    # Another manager's session is not touched by this reset.
    partner = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000")
    async with partner:
        await sign_in(partner, tree.email("partner"))
        await _reset_links(client, tree.email("direct"))
        texts = await texts_as_sent(OutboxEmail.to_email == tree.email("direct"))
        await _set(client, _LINK.search(texts[0]).group(1))
        assert (await partner.get("/dashboard")).status_code == 200


async def test_a_session_of_a_browser_that_sets_the_password_is_ended_too(client, tree):
    """Whoever holds the link may be someone else at the owner's desk: the
    owner signs in afresh with the password just chosen."""
    email = tree.email("north")
    await sign_in(client, email)
    signed_in_id = client.cookies.get("session", domain="127.0.0.1")
    (link,) = await _reset_links(client, email)
    await _set(client, link)
    assert "Your password is set. Sign in with it." in (await client.get("/login")).text
    assert client.cookies.get("session", domain="127.0.0.1") != signed_in_id
    assert _signed_out(await client.get(f"/companies/{tree.north['id']}"))
    await sign_in(client, email, NEW)
    assert (await client.get(f"/companies/{tree.north['id']}")).status_code == 200


async def test_a_session_signed_in_before_sessions_were_counted_still_works(app, client, tree):
    """A session written before the portal counted sessions has no count in it:
    it is the user's first, so the upgrade signs nobody out."""
    await sign_in(client, tree.email("north"))
    store = app.stores.get("sessions")
    session_id = client.cookies.get("session", domain="127.0.0.1")
    data = json.loads(await store.get(session_id))
    del data["generation"]
    await store.set(session_id, json.dumps(data).encode(), expires_in=3600)
    assert (await client.get(f"/companies/{tree.north['id']}")).status_code == 200


async def test_an_older_link_is_refused_once_a_newer_one_is_sent(client, tree):
    email = tree.email("north")
    older, newer = await _reset_links(client, email, count=2)
    refused = await client.get(older)
    assert refused.status_code == 404 and "Forgot password?" in refused.text
    assert (await _try_set(client, older)).status_code == 404
    await sign_in(client, email, PASSWORD)  # the password did not change
    client.cookies.clear()

    (_, _, newest) = await _reset_links(client, email)
    assert (await client.get(newest)).status_code == 200
    assert (await _set(client, newest)).status_code in (302, 303)
    await sign_in(client, email, NEW)


async def test_a_newer_link_voids_an_invitation_too(client, tree):
    """The rule is per user, whatever sent the older link."""
    created = await post_form_as_partner(client, tree)
    invitation = re.search(r'value="http://127\.0\.0\.1:8000(/set-password/[^"]+)"', created.text).group(1)
    client.cookies.clear()
    assert (await client.get(invitation)).status_code == 200
    (reset,) = await _reset_links(client, "new.manager@north.example")
    assert (await client.get(invitation)).status_code == 404
    assert (await client.get(reset)).status_code == 200


async def test_a_link_is_refused_after_its_owner_signs_in(client, tree):
    email = tree.email("north")
    (link,) = await _reset_links(client, email)
    await sign_in(client, email, PASSWORD)  # remembered it after all
    client.cookies.clear()
    gone = await client.get(link)
    assert gone.status_code == 404 and "Forgot password?" in gone.text
    assert (await _try_set(client, link)).status_code == 404
    # A link asked for after that sign-in works.
    (_, latest) = await _reset_links(client, email)
    assert (await client.get(latest)).status_code == 200


async def test_a_refused_sign_in_leaves_the_link_working(client, tree):
    email = tree.email("north")
    (link,) = await _reset_links(client, email)
    refused = await post_form(client, "/login", "/login", {"email": email, "password": "not the password"})
    assert refused.status_code == 400
    assert (await client.get(link)).status_code == 200


async def test_only_the_newest_link_of_a_user_is_honoured_by_the_domain(tree):
    attempts = MemoryCounter()
    email = tree.email("north")
    for _ in range(2):
        assert await signing.request_password_reset(email, T0, attempts)
    texts = await texts_as_sent(OutboxEmail.kind == "password_reset")
    older, newer = (_LINK.search(text).group(1).removeprefix("/set-password/") for text in texts)
    with pytest.raises(NotFound):
        await users.token_owner(older, T0)
    with pytest.raises(NotFound):
        await users.set_password(older, NEW, NEW, T0)
    before = await User.select(User.session_generation).where(User.email == email).first()
    await users.set_password(newer, NEW, NEW, T0)
    after = await User.select(User.session_generation).where(User.email == email).first()
    assert after["session_generation"] == before["session_generation"] + 1


# --- helpers ---------------------------------------------------------------------


async def post_form_as_partner(client: httpx.AsyncClient, tree) -> httpx.Response:
    await sign_in(client, tree.email("partner"))
    fields = {"email": "new.manager@north.example", "name": "New Manager", "role": "manager"}
    users_page = f"/companies/{tree.north['id']}/users"
    return await post_form(client, f"{users_page}/new", users_page, fields)
