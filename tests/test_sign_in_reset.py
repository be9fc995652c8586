"""The "Forgot password?" page e-mails a one-time set-password link, with
the same answer whether or not the address is a manager's, and cannot flood a mailbox."""

from __future__ import annotations

import re

import pytest

from portal.domain import sign_in as signing
from portal.domain import users
from portal.domain.errors import NotFound
from portal.tables import OutboxEmail, PasswordToken, User
from portal.web.throttle import MemoryCounter
from tests.factories import T0, add_user
from tests.support import PASSWORD, csrf_of, post_form, sign_in, texts_as_sent

_LINK = re.compile(r"http://127\.0\.0\.1:8000(/set-password/[A-Za-z0-9_-]+)")


def _main(html: str) -> str:
    """The page's card, where the answer is."""
    return re.search(r'<section class="card narrow">.*?</section>', html, re.S).group(0)


async def _ask(client, email: str):
    return await post_form(client, "/forgot-password", "/forgot-password", {"email": email})


async def test_a_manager_resets_a_forgotten_password_end_to_end(client, tree):
    email = tree.email("north")
    login = await client.get("/login")
    assert 'href="/forgot-password"' in login.text and "Forgot password?" in login.text

    answer = await _ask(client, email.upper())
    assert answer.status_code == 200 and "Check your mailbox" in answer.text
    (mail,) = await OutboxEmail.select().where(OutboxEmail.kind == "password_reset")
    assert mail["to_email"] == email
    (text,) = await texts_as_sent(OutboxEmail.id == mail["id"])
    path = _LINK.search(text).group(1)
    # Another manager of the wing cannot read the link on the E-mails page.
    await sign_in(client, tree.email("partner"))
    for page in ("/notifications", f"/notifications/{mail['id']}", f"/notifications/{mail['id']}/message.html"):
        assert path not in (await client.get(page)).text, page
    client.cookies.clear()

    assert (await client.get(path)).status_code == 200
    done = await post_form(client, path, path, {"password": "a brand new secret", "confirm": "a brand new secret"})
    assert done.status_code in (302, 303) and done.headers["location"] == "/login"
    assert "Your password is set. Sign in with it." in (await client.get("/login")).text
    await sign_in(client, email, "a brand new secret")

    # The link worked once.
    again = await client.get(path)
    assert again.status_code == 404 and "Forgot password?" in again.text
    client.cookies.clear()
    refused = await post_form(client, "/login", "/login", {"email": email, "password": PASSWORD})
    assert refused.status_code == 400


async def test_the_answer_is_the_same_for_anyone_and_only_a_manager_gets_mail(client, tree):
    await add_user(tree.north, "learner@north.example", role="learner")
    await add_user(tree.north, "gone@north.example")
    await User.update({User.active: False}).where(User.email == "gone@north.example")
    pages = {}
    for email in (
        tree.email("north"),
        "nobody@north.example",
        "learner@north.example",
        "gone@north.example",
        "not an address",
    ):
        answer = await _ask(client, email)
        assert answer.status_code == 200, email
        pages[email] = _main(answer.text).replace(email, "ADDRESS")
    assert len(set(pages.values())) == 1, pages
    mails = await OutboxEmail.select(OutboxEmail.to_email).where(OutboxEmail.kind == "password_reset")
    assert [m["to_email"] for m in mails] == [tree.email("north")]


async def test_an_empty_address_is_asked_for_again(client):
    answer = await _ask(client, "  ")
    assert answer.status_code == 400 and "Enter the e-mail address you sign in with." in answer.text


@pytest.mark.parametrize("who", ["manager", "unknown"])
async def test_requests_for_one_address_are_throttled_alike(client, tree, who):
    email = tree.email("direct") if who == "manager" else "nobody@direct.example"
    statuses = [(await _ask(client, email)).status_code for _ in range(signing.RESET_REQUESTS + 1)]
    assert statuses == [200] * signing.RESET_REQUESTS + [429]
    refused = await _ask(client, email)
    assert refused.status_code == 429 and "Several links were already requested" in refused.text
    assert int(refused.headers["retry-after"]) > 0
    sent = await OutboxEmail.count().where(OutboxEmail.kind == "password_reset")
    assert sent == (signing.RESET_REQUESTS if who == "manager" else 0)


async def test_requests_from_one_client_address_are_limited(client, tree):
    answers = [await _ask(client, f"someone{n}@example.test") for n in range(12)]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * 10 + [429] * 2
    assert "Too many requests from your address" in answers[-1].text


async def test_setting_a_password_lets_a_throttled_owner_in_at_once(client, tree):
    email = tree.email("north")
    token = csrf_of((await client.get("/login")).text)
    for _ in range(signing.SIGN_IN_ATTEMPTS + 1):
        last = await client.post("/login", data={"email": email, "password": "a wrong guess", "_csrf_token": token})
    assert last.status_code == 429
    await _ask(client, email)
    (text,) = await texts_as_sent(OutboxEmail.kind == "password_reset")
    path = _LINK.search(text).group(1)
    await post_form(client, path, path, {"password": "a brand new secret", "confirm": "a brand new secret"})
    await sign_in(client, email, "a brand new secret")


async def test_a_new_password_voids_the_owners_other_links(tree):
    attempts = MemoryCounter()
    email = tree.email("north")
    assert await signing.request_password_reset(email, T0, attempts)
    assert await signing.request_password_reset(email, T0, attempts)
    texts = await texts_as_sent(OutboxEmail.kind == "password_reset")
    first, second = (_LINK.search(text).group(1).removeprefix("/set-password/") for text in texts)
    await users.set_password(second, "a brand new secret", "a brand new secret", T0)
    assert await PasswordToken.count().where(PasswordToken.used_at.is_null()) == 0
    with pytest.raises(NotFound):
        await users.token_owner(first, T0)
    # And links are short-lived: an hour.
    assert await signing.request_password_reset(email, T0, attempts)
    (latest,) = await PasswordToken.select(PasswordToken.expires_at).where(PasswordToken.used_at.is_null())
    assert latest["expires_at"] == T0 + signing.RESET_VALID_FOR
