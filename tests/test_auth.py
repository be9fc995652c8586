from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta

import pytest

from portal.domain import sign_in as signing
from portal.domain.errors import SignInRefused
from portal.tables import User
from portal.web import session
from portal.web.throttle import MemoryCounter
from tests.factories import T0, add_user
from tests.support import PASSWORD, csrf_of, post_form, sign_in


async def test_sign_in_rotates_the_session_and_sign_out_ends_it(client, tree):
    await client.get("/login")
    client.cookies.set("session", "planted-by-an-attacker", domain="127.0.0.1")
    await sign_in(client, tree.email("partner"))
    new_id = client.cookies.get("session", domain="127.0.0.1")
    assert new_id and new_id != "planted-by-an-attacker"

    page = await client.get("/dashboard")
    assert page.status_code == 200
    logout = await client.post("/logout", data={"_csrf_token": csrf_of(page.text)})
    assert logout.status_code in (302, 303)
    # The old session id no longer signs anyone in, even if replayed.
    client.cookies.set("session", new_id, domain="127.0.0.1")
    assert (await client.get("/dashboard")).status_code in (302, 303)


async def test_an_unchanged_session_is_written_back_once_an_hour(app, client, tree):
    await sign_in(client, tree.email("partner"))
    store = app.stores.get("sessions")
    session_id = client.cookies.get("session", domain="127.0.0.1")
    written = await store.get(session_id)
    assert (await client.get("/dashboard")).status_code == 200
    assert await store.get(session_id) == written, "a page that changed nothing rewrote the session"

    stale = json.loads(written) | {"renewed": int(time.time()) - session.RENEW_EVERY - 1}
    await store.set(session_id, json.dumps(stale).encode(), expires_in=60)
    assert (await client.get("/dashboard")).status_code == 200
    renewed = json.loads(await store.get(session_id))
    assert renewed["renewed"] > stale["renewed"] and renewed["user_id"] == stale["user_id"]
    assert await store.expires_in(session_id) > 60  # the full lifetime again


async def test_a_visitor_who_is_not_signed_in_gets_no_session(client):
    for path in ("/login", "/dashboard", "/healthz"):
        response = await client.get(path)
        assert "session" not in response.cookies, path


async def test_cookies_are_httponly_and_lax(client, tree):
    response = await sign_in(client, tree.email("partner"))
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # the base URL in tests is http


async def test_post_without_csrf_token_is_refused(client, tree):
    await client.get("/login")
    response = await client.post("/login", data={"email": tree.email("partner"), "password": PASSWORD})
    assert response.status_code == 403
    assert "Reload the page" in response.text
    assert "session" not in response.cookies


async def test_htmx_post_without_header_is_refused(client, tree):
    await sign_in(client, tree.email("partner"))
    response = await client.post(f"/companies/{tree.direct['id']}/manage", headers={"HX-Request": "true"})
    assert response.status_code == 403


async def test_wrong_password_says_so_on_the_sign_in_page(client, tree):
    response = await post_form(client, "/login", "/login", {"email": tree.email("partner"), "password": "nope"})
    assert response.status_code == 400
    assert "do not match" in response.text
    assert tree.email("partner") in response.text  # the e-mail stays filled in


async def test_learners_get_the_answer_of_an_unknown_address(client, tree):
    # Even a learner row that somehow holds a manager's hash: only managers' hashes are checked.
    await add_user(tree.north, "learner@north.example", role="learner")
    await User.update({User.password_hash: (await User.select(User.password_hash).first())["password_hash"]}).where(
        User.email == "learner@north.example"
    )
    learner = await post_form(client, "/login", "/login", {"email": "learner@north.example", "password": PASSWORD})
    unknown = await post_form(client, "/login", "/login", {"email": "nobody@north.example", "password": PASSWORD})
    assert learner.status_code == unknown.status_code == 400
    assert signing.WRONG_CREDENTIALS in learner.text and signing.WRONG_CREDENTIALS in unknown.text
    assert "training platform" not in learner.text.replace("Learners use the training platform.", "")


async def test_an_account_is_throttled_not_locked(tree):
    """No 15-minute lock anyone can trigger; five checks per
    window, then a wait until the window ends, and a success starts afresh."""
    email, attempts = tree.email("direct"), MemoryCounter()
    for _ in range(signing.SIGN_IN_ATTEMPTS):
        with pytest.raises(SignInRefused) as refused:
            await signing.authenticate(email, "wrong-password", T0, attempts)
        assert not isinstance(refused.value, signing.Throttled)
    # Even the right password is not checked in this window.
    with pytest.raises(signing.Throttled) as throttled:
        await signing.authenticate(email, PASSWORD, T0 + timedelta(seconds=30), attempts)
    assert "Forgot password?" in str(throttled.value)
    # The next window (a minute, not a quarter of an hour) lets the owner in.
    assert await signing.authenticate(email, PASSWORD, T0 + signing.SIGN_IN_WINDOW, attempts)
    # ...and a success clears the count: five more tries in that same window.
    for _ in range(signing.SIGN_IN_ATTEMPTS - 1):
        with pytest.raises(SignInRefused):
            await signing.authenticate(email, "wrong-password", T0 + signing.SIGN_IN_WINDOW, attempts)
    assert await signing.authenticate(email, PASSWORD, T0 + signing.SIGN_IN_WINDOW, attempts)


async def test_a_deactivated_manager_is_told_only_with_the_right_password(tree):
    email, attempts = tree.email("direct"), MemoryCounter()
    await User.update({User.active: False}).where(User.email == email)
    with pytest.raises(SignInRefused, match="do not match"):
        await signing.authenticate(email, "wrong-password", T0, attempts)
    with pytest.raises(SignInRefused, match="deactivated"):
        await signing.authenticate(email, PASSWORD, T0, attempts)


async def test_sign_in_attempts_from_one_address_are_limited(tree):
    import httpx

    from portal.web.app import create_app
    from tests.support import running

    async with running(create_app(sign_ins_per_minute=3)) as app:
        # An address of its own, as the Redis-backed limiter remembers other tests' sign-ins.
        transport = httpx.ASGITransport(app=app, client=(f"192.0.2.{secrets.randbelow(250) + 1}", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            statuses = []
            for _ in range(4):
                response = await post_form(client, "/login", "/login", {"email": "x@y.example", "password": "z"})
                statuses.append(response.status_code)
            assert statuses == [400, 400, 400, 429]
            assert "Too many sign-in attempts from your address" in response.text
