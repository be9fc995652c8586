"""Two-factor sign-in: a code after the password, each code once, the step's own
limiter, recovery codes, enrolment (from Profile, or forced by a partner's
requirement, which no company below can lift) and a partner manager's reset."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from portal.domain import partner_settings
from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.two_factor import totp
from portal.tables import AuditEntry, OutboxEmail
from tests.second_factor import SECRET, code_now, enrol, password_step, send_code
from tests.support import post_form, sign_in


@pytest.fixture
async def other_client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c:
        yield c


def _to(response: httpx.Response) -> str:
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    return response.headers["location"]


async def test_a_manager_with_an_authenticator_app_signs_in_with_a_code_after_the_password(client, tree):
    user = tree.managers["partner"]
    await enrol(user)
    assert _to(await password_step(client, user["email"])) == "/login/code"
    assert _to(await client.get("/dashboard")) == "/login/code"
    wrong = await send_code(client, "123456" if code_now() != "123456" else "654321")
    assert wrong.status_code == 400 and "not right" in wrong.text
    assert _to(await send_code(client, code_now())) == "/dashboard"
    assert (await client.get("/dashboard")).status_code == 200


async def test_a_manager_without_a_second_factor_signs_in_with_the_password(client, tree):
    assert _to(await password_step(client, tree.email("north"))) == f"/companies/{tree.north['id']}"


async def test_a_code_is_accepted_once(client, other_client, tree):
    user = tree.managers["partner"]
    await enrol(user)
    code = code_now()
    await password_step(client, user["email"])
    await password_step(other_client, user["email"])
    assert _to(await send_code(client, code)) == "/dashboard"
    replayed = await send_code(other_client, code)
    assert replayed.status_code == 400
    # A code of an earlier step is refused too, even within the window.
    assert (await send_code(other_client, code_now(steps_ahead=-1))).status_code == 400
    assert _to(await send_code(other_client, code_now(steps_ahead=1))) == "/dashboard"


async def test_five_wrong_codes_close_the_code_step_but_not_the_password(client, other_client, tree):
    user = tree.managers["partner"]
    await enrol(user)
    await password_step(client, user["email"])
    right = code_now()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        assert (await send_code(client, wrong)).status_code == 400
    closed = await send_code(client, right)
    assert closed.status_code == 429 and "Too many wrong codes" in closed.text and closed.headers["retry-after"]
    # The password still works (its own count was not touched), the code step stays closed.
    assert _to(await password_step(other_client, user["email"])) == "/login/code"
    assert (await send_code(other_client, right)).status_code == 429
    # Another manager's code step is open.
    other = tree.managers["sub"]
    await enrol(other)
    other_client.cookies.clear()
    await password_step(other_client, other["email"])
    assert _to(await send_code(other_client, code_now())) == "/dashboard"


async def test_a_recovery_code_signs_in_once(client, other_client, tree):
    user = tree.managers["north"]
    codes = await enrol(user)
    assert len(codes) == 10 and len(set(codes)) == 10
    await password_step(client, user["email"])
    assert _to(await send_code(client, codes[3].upper())) == f"/companies/{tree.north['id']}"
    profile = await client.get("/profile")
    assert "You signed in with a recovery code; 9 left." in profile.text
    await password_step(other_client, user["email"])
    assert (await send_code(other_client, codes[3])).status_code == 400


async def test_enrolling_from_profile_shows_a_qr_code_and_the_key_and_ends_other_sessions(client, other_client, tree):
    email = tree.email("north")
    await sign_in(client, email)
    await sign_in(other_client, email)
    page = await client.get("/two-factor/authenticator")
    assert page.status_code == 200 and "<svg" in page.text and "<script" not in page.text.split("<main")[1]
    key = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")
    assert (await client.get("/two-factor/authenticator")).text.count(totp.grouped(key)) == 1  # the same key
    refused = await post_form(client, "/two-factor/authenticator", "/two-factor/authenticator", {"code": "12345"})
    assert refused.status_code == 400 and "does not match" in refused.text
    done = await post_form(client, "/two-factor/authenticator", "/two-factor/authenticator", {"code": code_now(key)})
    assert done.status_code == 200
    assert len(re.findall(r"<li><code>[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}</code></li>", done.text)) == 10
    # The other session is signed out; this one carries on.
    assert _to(await other_client.get("/profile")).startswith("/login")
    assert "Authenticator app: <strong>on</strong>" in (await client.get("/profile")).text
    entry = await AuditEntry.select(AuditEntry.action).where(AuditEntry.actor == tree.managers["north"]["id"])
    assert {"action": "two_factor.enrol_authenticator"} in entry


async def test_removing_the_app_ends_other_sessions_and_the_password_alone_signs_in_again(client, other_client, tree):
    user = tree.managers["north"]
    await enrol(user)
    await password_step(client, user["email"])
    await send_code(client, code_now())
    await password_step(other_client, user["email"])
    await send_code(other_client, code_now(steps_ahead=1))
    assert (await other_client.get("/profile")).status_code == 200
    await post_form(client, "/profile", "/two-factor/authenticator/remove", {})
    assert "Authenticator app: off" in (await client.get("/profile")).text
    assert _to(await other_client.get("/profile")).startswith("/login")
    other_client.cookies.clear()
    assert _to(await password_step(other_client, user["email"])) == f"/companies/{tree.north['id']}"


async def test_a_partner_requirement_sends_its_customers_managers_to_enrolment(client, tree):
    await sign_in(client, tree.email("partner"))
    saved = await post_form(client, "/settings/sign-in", "/settings/sign-in", {"customers": "on"})
    assert _to(saved) == "/settings/sign-in"
    assert "now requires a second factor of its customers" in (await client.get("/settings/sign-in")).text
    client.cookies.clear()
    # Its own staff are not asked; the customers under it (also below a sub-partner) are.
    assert _to(await password_step(client, tree.email("sub"))) == "/dashboard"
    client.cookies.clear()
    assert _to(await password_step(client, tree.email("north"))) == "/two-factor/authenticator"
    assert _to(await client.get(f"/companies/{tree.north['id']}")) == "/two-factor/authenticator"
    page = await client.get("/two-factor/authenticator")
    key = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")
    done = await post_form(client, "/two-factor/authenticator", "/two-factor/authenticator", {"code": code_now(key)})
    assert done.status_code == 200 and "recovery codes" in done.text
    assert (await client.get(f"/companies/{tree.north['id']}")).status_code == 200
    # Another partner's customers are not asked.
    client.cookies.clear()
    assert _to(await password_step(client, tree.email("other_customer"))) == f"/companies/{tree.other_customer['id']}"


async def test_a_company_below_cannot_lift_a_requirement_from_above(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    sub = await load_actor(tree.managers["sub"]["id"], None)
    await partner_settings.save_two_factor(partner, staff=True, customers=False, now=utcnow())
    rule = await partner_settings.save_two_factor(sub, staff=False, customers=False, now=utcnow())
    assert rule.staff_from_above and not rule.staff
    assert await partner_settings.two_factor_required(tree.sub["path"], "sub_partner")
    assert not await partner_settings.two_factor_required(tree.north["path"], "customer")
    assert not await partner_settings.two_factor_required(tree.other["path"], "partner")
    # Saving the requirement left the sub-partner's limits as they were.
    assert (await partner_settings.for_path(tree.sub["path"])).max_order_quantity == (
        await partner_settings.for_path(tree.partner["path"])
    ).max_order_quantity


async def test_customer_managers_have_no_sign_in_settings(client, tree):
    await sign_in(client, tree.email("north"))
    assert (await client.get("/settings/sign-in")).status_code == 403


async def test_a_partner_manager_resets_a_managers_second_factor(client, other_client, tree):
    north = tree.managers["north"]
    await enrol(north)
    await password_step(other_client, north["email"])
    await send_code(other_client, code_now())
    assert (await other_client.get("/profile")).status_code == 200

    await sign_in(client, tree.email("sub"))
    user_page = f"/companies/{tree.north['id']}/users/{north['id']}"
    shown = await client.get(user_page)
    assert "Reset second factor" in shown.text
    done = await post_form(client, user_page, f"{user_page}/second-factor/reset", {})
    assert _to(done) == user_page
    assert "has no second factor" in (await client.get(user_page)).text

    assert _to(await other_client.get("/profile")).startswith("/login")  # every session of theirs ended
    mail = await OutboxEmail.select().where(OutboxEmail.kind == "second_factor_reset").first()
    assert mail["to_email"] == north["email"] and "reset the second factor" in mail["body"]
    audit = await AuditEntry.select().where(AuditEntry.action == "user.reset_second_factor").first()
    detail = json.loads(audit["detail"]) if isinstance(audit["detail"], str) else audit["detail"]
    assert audit["actor"] == tree.managers["sub"]["id"] and detail["email"] == north["email"]
    other_client.cookies.clear()
    assert _to(await password_step(other_client, north["email"])) == f"/companies/{tree.north['id']}"


async def test_only_a_partner_manager_of_the_wing_resets_a_second_factor(client, tree):
    north = tree.managers["north"]
    await enrol(north)
    path = f"/companies/{tree.north['id']}/users/{north['id']}/second-factor/reset"
    await sign_in(client, tree.email("other"))
    assert (await post_form(client, "/profile", path, {})).status_code == 404
    client.cookies.clear()
    await password_step(client, north["email"])
    await send_code(client, code_now())
    assert (await post_form(client, "/profile", path, {})).status_code == 403  # a customer manager
    client.cookies.clear()
    # The wrong company in the address answers 404 too.
    await sign_in(client, tree.email("partner"))
    wrong = f"/companies/{tree.direct['id']}/users/{north['id']}/second-factor/reset"
    assert (await post_form(client, "/profile", wrong, {})).status_code == 404
    assert (await totp.TotpFactor.count().where(totp.TotpFactor.user == north["id"])) == 1


def test_the_secret_is_shown_grouped_for_typing():
    assert totp.grouped(SECRET) == "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
