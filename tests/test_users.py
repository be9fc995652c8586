from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from portal.domain import users
from portal.domain.access import load_actor
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import OutboxEmail, User
from tests.factories import T0
from tests.support import csrf_of, post_form, sign_in, texts_as_sent


async def add(client, company_id: int, **fields):
    return await post_form(client, f"/companies/{company_id}/users/new", f"/companies/{company_id}/users", fields)


async def test_a_new_manager_gets_a_one_time_set_password_link(client, tree):
    await sign_in(client, tree.email("partner"))
    created = await add(client, tree.north["id"], name="Nia Okafor", email="Nia.Okafor@North.Example", role="manager")
    assert created.status_code == 201
    link = re.search(r'value="(http://127\.0\.0\.1:8000/set-password/[^"]+)"', created.text).group(1)
    assert "72 hours" in created.text
    user = await User.select().where(User.email == "nia.okafor@north.example").first()
    assert user["role"] == "manager" and user["password_hash"] is None

    path = link.removeprefix("http://127.0.0.1:8000")
    short = await post_form(client, path, path, {"password": "short", "confirm": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.text
    done = await post_form(client, path, path, {"password": "a-long-password", "confirm": "a-long-password"})
    assert done.headers["location"] == "/login"
    assert "Your password is set. Sign in with it." in (await client.get("/login")).text
    again = await client.get(path)
    assert again.status_code == 404 and "expired or was already used" in again.text

    client.cookies.clear()
    signed = await sign_in(client, "nia.okafor@north.example", "a-long-password")
    assert signed.headers["location"] == f"/companies/{tree.north['id']}"


async def test_set_password_link_expires_after_72_hours(tree):
    actor = await load_actor(tree.managers["partner"]["id"], None)
    _, token = await users.create_user(actor, tree.direct["id"], "late@direct.example", "Late Comer", "manager", T0)
    assert await users.token_owner(token, T0 + timedelta(hours=71, minutes=59))
    with pytest.raises(NotFound):
        await users.set_password(token, "long-enough-pw", "long-enough-pw", T0 + timedelta(hours=72, seconds=1))


async def test_user_form_explains_problems_next_to_fields(client, tree):
    await sign_in(client, tree.email("north"))
    bad = await add(client, tree.north["id"], name="", email="not-an-address", role="learner")
    assert bad.status_code == 400
    assert "Enter the person&#39;s name." in bad.text
    assert "An email address must have an @-sign." in bad.text
    duplicate = await add(client, tree.north["id"], name="Copy", email=tree.email("direct").upper(), role="learner")
    assert f"{tree.email('direct')} already has an account." in duplicate.text
    assert await User.count() == 6


async def test_customer_manager_adds_learners_but_not_managers(client, tree):
    await sign_in(client, tree.email("north"))
    learner = await add(client, tree.north["id"], name="Lee Learner", email="lee@north.example", role="learner")
    assert learner.status_code == 201 and "set-password" not in learner.text
    manager = await add(client, tree.north["id"], name="Boss", email="boss@north.example", role="manager")
    assert manager.status_code == 403
    assert not await User.exists().where(User.email == "boss@north.example")


async def test_learners_belong_to_customers(tree):
    actor = await load_actor(tree.managers["partner"]["id"], None)
    with pytest.raises(ValidationFailed) as refused:
        await users.create_user(actor, tree.sub["id"], "l@sub.example", "L", "learner", T0)
    assert refused.value.errors == {"role": "Learners belong to customer companies."}


async def test_customer_manager_cannot_add_to_a_sibling(tree):
    actor = await load_actor(tree.managers["north"]["id"], None)
    with pytest.raises(NotFound):
        await users.create_user(actor, tree.direct["id"], "x@direct.example", "X", "learner", T0)
    with pytest.raises(PermissionDenied):
        await users.create_user(actor, tree.north["id"], "y@north.example", "Y", "manager", T0)


async def test_company_page_lists_and_filters_its_users(client, tree):
    await sign_in(client, tree.email("north"))
    for n in range(30):
        await add(client, tree.north["id"], name=f"Learner {n:02d}", email=f"l{n}@north.example", role="learner")
    page = await client.get(f"/companies/{tree.north['id']}")
    assert "31 users" in page.text and "Page 1 of 2" in page.text
    fragment = await client.get(
        f"/companies/{tree.north['id']}",
        params={"q": "l29@"},
        headers={"HX-Request": "true", "HX-Target": "user-results"},
    )
    assert "<html" not in fragment.text and "Learner 29" in fragment.text and "Learner 28" not in fragment.text


async def test_a_new_manager_is_sent_the_link_shown_on_screen(client, tree):
    await sign_in(client, tree.email("partner"))
    created = await add(client, tree.north["id"], name="Nia Okafor", email="nia@north.example", role="manager")
    link = re.search(r'value="(http://127\.0\.0\.1:8000/set-password/[^"]+)"', created.text).group(1)
    (mail,) = await OutboxEmail.select().where(OutboxEmail.kind == "invitation")
    assert mail["to_email"] == "nia@north.example"
    assert link in (await texts_as_sent(OutboxEmail.id == mail["id"]))[0] and "North Customer" in mail["subject"]
    # Other managers of the wing (here a customer manager of the company) do not see the link.
    client.cookies.clear()
    await sign_in(client, tree.email("north"))
    for page in ("/notifications", f"/notifications/{mail['id']}", f"/notifications/{mail['id']}/message.html"):
        assert link.removeprefix("http://127.0.0.1:8000") not in (await client.get(page)).text, page
    # A learner gets no e-mail from the portal: they use the training platform.
    await add(client, tree.north["id"], name="Lee Learner", email="lee@north.example", role="learner")
    assert await OutboxEmail.count() == 1


@pytest.mark.parametrize("role", ["manager", "learner"])
async def test_five_simultaneous_add_user_with_one_address_add_one(client, tree, role):
    """Double submission: before, the four losers of the race hit the
    unique index and answered 500."""
    await sign_in(client, tree.email("partner"))
    company = tree.north["id"]
    token = csrf_of((await client.get(f"/companies/{company}/users/new")).text)
    fields = {"name": "Dee Double", "email": "dee@north.example", "role": role, "_csrf_token": token}
    answers = await asyncio.gather(*(client.post(f"/companies/{company}/users", data=fields) for _ in range(5)))
    assert sorted(answer.status_code for answer in answers) == [201, 400, 400, 400, 400]
    for answer in answers:
        if answer.status_code == 400:
            assert "dee@north.example already has an account." in answer.text
            assert 'name="email"' in answer.text  # the form, filled in, to correct
    assert await User.count().where(User.email == "dee@north.example") == 1
    assert await OutboxEmail.count().where(OutboxEmail.kind == "invitation") == (1 if role == "manager" else 0)
