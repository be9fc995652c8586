"""Two-factor sign-in cannot be skipped: a session that passed the password but
not the second factor answers every route, by every method, with the step it is
at (the code, or enrolment), as the tenant tests walk every route."""

from __future__ import annotations

import re

import httpx
import pytest

from portal.domain import partner_settings
from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.web.app import create_app
from tests.second_factor import enrol, password_step
from tests.support import csrf_headers

# Open to anyone: the step pages themselves, signing in and out, set-password links,
# files, the health check, the test processor's card page and Stripe's webhook.
PUBLIC = {
    "/login",
    "/login/code",
    "/login/code/passkey",
    "/login/passkey",
    "/sso/callback",  # answers only the state this browser started (tests/test_sso.py)
    "/logout",
    "/forgot-password",
    "/set-password/{token:str}",
    "/healthz",
    "/test-processor/card",
    "/webhooks/stripe",
    "/outbox",  # moves to /notifications, which asks for the step like any page
    # A partner's logo and color, which its e-mails load from anywhere.
    "/brand/logo/{digest:str}",
    "/brand/colour/{rrggbb:str}",
}
PUBLIC_PREFIXES = ("/static/", "/schema")
API = ("/api/", "/scim/")  # an API key or SCIM token, never a session: 401 to anyone without one


def _every_route() -> list[tuple[str, str]]:
    found = set()
    for route in create_app().routes:
        if route.path in PUBLIC or route.path.startswith(PUBLIC_PREFIXES):
            continue
        found |= {(method, route.path) for method in route.methods - {"HEAD", "OPTIONS"}}
    return sorted(found)


def _concrete(path: str, ids: dict[str, int]) -> str:
    """A route's path with the signed-in-to-be user's own ids where it names
    a company or a user, and 1 elsewhere: the most a session could hope to reach."""

    def value(match: re.Match) -> str:
        name, kind = match.group(1), match.group(2)
        return str(ids.get(name, 1)) if kind == "int" else "x"

    return re.sub(r"\{(\w+):(\w+)\}", value, path)


async def _walk(client: httpx.AsyncClient, ids: dict[str, int], step_page: str, allowed: set[str]) -> list[str]:
    headers = await csrf_headers(client, step_page)
    wrong = []
    routes = _every_route()
    assert len(routes) > 80 and ("GET", "/dashboard") in routes and ("POST", "/profile/password") in routes
    for method, path in routes:
        if path in allowed:
            continue
        url = _concrete(path, ids)
        answer = await client.request(method, url, headers=headers, data={"code": "000000"})
        if path.startswith(API):
            ok = answer.status_code == 401
        else:
            ok = answer.status_code in (302, 303) and answer.headers.get("location") == step_page
        if not ok:
            wrong.append(f"{method} {url}: {answer.status_code} {answer.headers.get('location', '')}")
    return wrong


async def test_every_route_answers_a_session_waiting_for_its_code_with_the_code_page(client, tree):
    user = tree.managers["partner"]
    await enrol(user)
    assert (await password_step(client, user["email"])).headers["location"] == "/login/code"
    ids = {"company_id": tree.partner["id"], "user_id": user["id"]}
    assert await _walk(client, ids, "/login/code", allowed=set()) == []
    # The walk changed nothing about the session: it still waits for the code.
    assert (await client.get("/login/code")).status_code == 200
    assert (await client.get("/")).headers["location"] == "/login/code"


async def test_every_route_answers_a_session_that_must_enrol_with_the_enrolment_page(client, tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    await partner_settings.save_two_factor(partner, staff=False, customers=True, now=utcnow())
    user = tree.managers["north"]
    assert (await password_step(client, user["email"])).headers["location"] == "/two-factor/authenticator"
    ids = {"company_id": tree.north["id"], "user_id": user["id"]}
    wrong = await _walk(client, ids, "/two-factor/authenticator", allowed={"/two-factor/authenticator"})
    assert wrong == []
    assert (await client.get("/login/code")).headers["location"] == "/two-factor/authenticator"
    enrolment = await client.get("/two-factor/authenticator")
    assert enrolment.status_code == 200 and "Your partner requires a second factor" in enrolment.text


@pytest.mark.parametrize("step", ["code", "enrol"])
async def test_a_waiting_session_runs_out(client, tree, step, monkeypatch):
    """Ten minutes to finish the second step; after that, the password again."""
    import portal.web.session as session_module

    user = tree.managers["partner"]
    if step == "code":
        await enrol(user)
    else:
        partner = await load_actor(user["id"], None)
        await partner_settings.save_two_factor(partner, staff=True, customers=False, now=utcnow())
    await password_step(client, user["email"])
    monkeypatch.setattr(session_module, "PENDING_FOR", -1)  # sessions started from now on are already over
    client.cookies.clear()
    await password_step(client, user["email"])
    answer = await client.get("/dashboard")
    assert answer.status_code in (302, 303) and answer.headers["location"].startswith("/login?")
