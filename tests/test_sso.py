"""Single sign-on with OpenID Connect against a real provider on loopback
(tests/oidc_provider.py): the sign-in, and each way it is refused: a wrong
issuer, a replayed or expired answer, a user of another partner, state and nonce."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from portal.domain import partner_settings, sign_in
from portal.domain.access import load_actor
from portal.domain.billing.payments import TestProcessor
from portal.domain.clock import utcnow
from portal.domain.errors import SignInRefused, ValidationFailed
from portal.domain.sso import flow
from portal.domain.sso import settings as sso_settings
from portal.domain.sso.provider import ProviderDirectory, ProviderUnreachable, check_issuer
from portal.services import Services
from portal.tables import AuditEntry, User
from portal.tables.sso import SsoAttempt
from tests.factories import add_user
from tests.oidc_provider import start_provider
from tests.support import PASSWORD, csrf_of, post_form
from tests.support import sign_in as password_sign_in

REDIRECT = "http://127.0.0.1:8000/sso/callback"
_PROVIDER_LINK = re.compile(r'href="([^"]+)" data-testid="sso-continue"')


@pytest.fixture(scope="module")
def provider():
    running = start_provider()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def honest_provider(provider):
    provider.answer_as.clear()
    yield
    provider.answer_as.clear()


@pytest.fixture
def services():
    # The provider listens on loopback: allowed here as in a development install.
    return Services(processor=TestProcessor(), sso_providers=ProviderDirectory(allow_private=True))


async def configure(tree, provider, **choices) -> sso_settings.ProviderSettings:
    actor = await load_actor(tree.managers["partner"]["id"], None)
    values = {
        "issuer": provider.issuer,
        "client_id": "portal-client",
        "client_secret": "s3cret",
        "domains": "partner.example, sub.example, direct.example, north.example",
        "create_on_first_sign_in": False,
        "sso_only_for_staff": False,
        "trust_provider_mfa": False,
    } | choices
    return await sso_settings.save(actor, **values, now=utcnow(), allow_private=True)


async def start(client: httpx.AsyncClient, email: str) -> httpx.Response:
    """The sign-in form with the e-mail only."""
    return await post_form(client, "/login", "/login", {"email": email, "password": ""})


def provider_url(page: httpx.Response) -> str:
    match = _PROVIDER_LINK.search(page.text)
    assert match, page.text[:800]
    return unescape(match.group(1))


async def sso_sign_in(client, provider, email: str, sub: str | None = None) -> httpx.Response:
    page = await start(client, email)
    assert page.status_code == 200, page.text[:500]
    callback = await provider.authorize(provider_url(page), sub or email)
    return await client.get(callback)


async def signed_in_as(client) -> str | None:
    page = await client.get("/profile")
    if page.status_code != 200:
        return None
    return page.text


# --- The sign-in -----------------------------------------------------------------------


async def test_a_partner_manager_signs_in_at_the_partners_provider(client, tree, provider):
    await configure(tree, provider)
    page = await start(client, tree.email("partner"))
    assert page.status_code == 200
    # The browser moves on by itself (no script), and has a link if it does not.
    assert 'http-equiv="refresh"' in page.text
    query = parse_qs(urlsplit(provider_url(page)).query)
    assert query["client_id"] == ["portal-client"]
    assert query["redirect_uri"] == [REDIRECT]
    assert query["login_hint"] == [tree.email("partner")]
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    callback = await provider.authorize(provider_url(page), tree.email("partner"))
    done = await client.get(callback)
    assert done.status_code in (302, 303) and done.headers["location"] == "/dashboard"
    assert tree.email("partner") in (await signed_in_as(client) or "")


async def test_a_customers_manager_under_the_partner_signs_in_too(client, tree, provider):
    await configure(tree, provider)
    done = await sso_sign_in(client, provider, tree.email("direct"))
    assert done.headers["location"] == f"/companies/{tree.direct['id']}"


async def test_an_address_of_no_sso_domain_is_asked_its_password(client, tree, provider):
    await configure(tree, provider)
    page = await start(client, tree.email("other"))
    assert page.status_code == 400 and "Enter your password." in page.text
    # And the password sign-in works as ever, also for an address of an SSO domain.
    await password_sign_in(client, tree.email("partner"))


# --- A wrong issuer ----------------------------------------------------------------------


async def test_an_id_token_of_another_issuer_is_refused(client, tree, provider):
    await configure(tree, provider)
    # The provider signs with its real key, but names another issuer in the token.
    provider.answer_as["/oauth2/token"] = provider.foreign_host
    done = await sso_sign_in(client, provider, tree.email("partner"))
    assert done.status_code == 400 and flow.NOT_PROVEN.replace("'", "&#39;") in done.text
    assert await signed_in_as(client) is None
    assert not await AuditEntry.exists().where(AuditEntry.action == "sign_in")


async def test_the_domain_names_the_failed_claim_for_a_wrong_issuer(tree, provider):
    await configure(tree, provider)
    providers = ProviderDirectory(allow_private=True)
    started = await flow.begin(tree.email("partner"), REDIRECT, None, utcnow(), providers)
    callback = await provider.authorize(started.url, tree.email("partner"))
    provider.answer_as["/oauth2/token"] = provider.foreign_host
    with pytest.raises(flow.TokenRefused) as refused:
        await flow.complete(started.state, _code(callback), REDIRECT, utcnow(), providers)
    assert "iss" in refused.value.reason


async def test_a_discovery_document_naming_another_issuer_is_refused(client, tree, provider):
    await configure(tree, provider)
    provider.answer_as["/.well-known/openid-configuration"] = provider.foreign_host
    with pytest.raises(ProviderUnreachable, match="another issuer"):
        await ProviderDirectory(allow_private=True).discover(provider.issuer, utcnow())
    page = await start(client, tree.email("partner"))
    assert page.status_code == 502 and "could not be reached" in page.text


# --- Replayed and expired ----------------------------------------------------------------


def _code(callback: str) -> str:
    return parse_qs(urlsplit(callback).query)["code"][0]


def _state(callback: str) -> str:
    return parse_qs(urlsplit(callback).query)["state"][0]


async def test_the_same_answer_twice_signs_in_once(client, tree, provider):
    await configure(tree, provider)
    page = await start(client, tree.email("partner"))
    callback = await provider.authorize(provider_url(page), tree.email("partner"))
    assert (await client.get(callback)).status_code in (302, 303)
    await client.post("/logout", headers={"x-csrftoken": csrf_of((await client.get("/profile")).text)})
    again = await client.get(callback)
    assert again.status_code == 400 and await signed_in_as(client) is None


async def test_a_replayed_state_and_code_are_refused_by_the_domain(tree, provider):
    await configure(tree, provider)
    providers = ProviderDirectory(allow_private=True)
    started = await flow.begin(tree.email("partner"), REDIRECT, None, utcnow(), providers)
    callback = await provider.authorize(started.url, tree.email("partner"))
    done = await flow.complete(started.state, _code(callback), REDIRECT, utcnow(), providers)
    assert done.user["email"] == tree.email("partner")
    with pytest.raises(SignInRefused, match="used already"):
        await flow.complete(started.state, _code(callback), REDIRECT, utcnow(), providers)


async def test_ten_arrivals_of_one_answer_at_once_sign_in_once(tree, provider):
    await configure(tree, provider)
    providers = ProviderDirectory(allow_private=True)
    started = await flow.begin(tree.email("partner"), REDIRECT, None, utcnow(), providers)
    callback = await provider.authorize(started.url, tree.email("partner"))
    results = await asyncio.gather(
        *[flow.complete(started.state, _code(callback), REDIRECT, utcnow(), providers) for _ in range(10)],
        return_exceptions=True,
    )
    assert sum(isinstance(r, flow.SignedIn) for r in results) == 1
    assert all(isinstance(r, SignInRefused) for r in results if not isinstance(r, flow.SignedIn))


async def test_an_expired_id_token_is_refused(tree, provider):
    """The provider's tokens live an hour; the portal's clock two hours on finds it expired."""
    await configure(tree, provider)
    providers = ProviderDirectory(allow_private=True)
    later = utcnow() + timedelta(hours=2)
    started = await flow.begin(tree.email("partner"), REDIRECT, None, later, providers)
    callback = await provider.authorize(started.url, tree.email("partner"))
    with pytest.raises(flow.TokenRefused) as refused:
        await flow.complete(started.state, _code(callback), REDIRECT, later, providers)
    assert "expired" in refused.value.reason or "exp" in refused.value.reason


async def test_an_attempt_answered_too_late_is_refused(tree, provider):
    await configure(tree, provider)
    providers = ProviderDirectory(allow_private=True)
    started = await flow.begin(tree.email("partner"), REDIRECT, None, utcnow(), providers)
    callback = await provider.authorize(started.url, tree.email("partner"))
    late = utcnow() + flow.ATTEMPT_VALID_FOR + timedelta(seconds=1)
    with pytest.raises(SignInRefused, match="took too long"):
        await flow.complete(started.state, _code(callback), REDIRECT, late, providers)


async def test_the_hourly_job_deletes_attempts_past_their_time_and_keeps_the_rest(tree, provider):
    from portal.jobs.sso import forget_finished_sso_attempts

    await configure(tree, provider)
    providers = ProviderDirectory(allow_private=True)
    now = utcnow()
    old = await flow.begin(tree.email("partner"), REDIRECT, None, now - flow.ATTEMPT_VALID_FOR * 2, providers)
    live = await flow.begin(tree.email("partner"), REDIRECT, None, now, providers)
    assert await forget_finished_sso_attempts({}) == 1
    assert [row["state"] for row in await SsoAttempt.select(SsoAttempt.state)] == [live.state]
    assert old.state != live.state


# --- Another partner's users and domains ----------------------------------------------------


async def test_a_manager_of_another_partner_is_refused(client, tree, provider):
    """Acme's provider answers for other.example's manager, who is Other MSP's: no."""
    await configure(tree, provider, domains="partner.example, other.example")
    done = await sso_sign_in(client, provider, tree.email("other"))
    assert done.status_code == 400 and "is not a manager under Acme MSP" in done.text
    assert await signed_in_as(client) is None


async def test_an_address_the_provider_gives_outside_the_partners_domains_is_refused(client, tree, provider):
    await configure(tree, provider)
    provider.put_user("someone", {"email": tree.email("other")})
    done = await sso_sign_in(client, provider, tree.email("partner"), sub="someone")
    assert done.status_code == 400 and "which is not of its domains" in done.text


async def test_an_unverified_address_is_refused(client, tree, provider):
    await configure(tree, provider)
    provider.put_user("unverified", {"email": tree.email("partner"), "email_verified": False})
    done = await sso_sign_in(client, provider, tree.email("partner"), sub="unverified")
    assert done.status_code == 400 and "verified e-mail" in done.text


async def test_a_domain_belongs_to_one_partner(tree, provider):
    await configure(tree, provider)
    other = await load_actor(tree.managers["other"]["id"], None)
    with pytest.raises(ValidationFailed, match="partner.example"):
        await sso_settings.save(
            other,
            issuer=provider.issuer,
            client_id="c",
            client_secret="s",
            domains="other.example, partner.example",
            create_on_first_sign_in=False,
            sso_only_for_staff=False,
            trust_provider_mfa=False,
            now=utcnow(),
            allow_private=True,
        )


async def test_settings_refuse_public_mail_and_private_issuers(tree):
    actor = await load_actor(tree.managers["partner"]["id"], None)
    values = dict(client_id="c", client_secret="s", create_on_first_sign_in=False, sso_only_for_staff=False)
    with pytest.raises(ValidationFailed) as invalid:
        await sso_settings.save(
            actor,
            issuer="http://127.0.0.1:9/",
            domains="gmail.com",
            trust_provider_mfa=False,
            now=utcnow(),
            allow_private=False,
            **values,
        )
    assert set(invalid.value.errors) == {"issuer", "domains"}


# --- State and nonce ---------------------------------------------------------------------


async def test_an_issuer_whose_name_resolves_to_a_private_address_is_not_fetched():
    """The name passes the check of the address as typed, but this machine's own
    name resolves to one of its addresses: nothing is fetched from it."""
    issuer = f"https://{socket.gethostname()}/tenant"
    assert check_issuer(issuer, allow_private=False) == issuer
    with pytest.raises(ProviderUnreachable, match="resolves to a private address"):
        await ProviderDirectory().discover(issuer, utcnow())


async def test_an_answer_to_another_browser_is_refused(client, app, tree, provider):
    """Login CSRF: an attacker's own answer, opened in the victim's browser, signs no one in."""
    await configure(tree, provider)
    page = await start(client, tree.email("partner"))
    callback = await provider.authorize(provider_url(page), tree.email("partner"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as victim:
        answer = await victim.get(callback)
        assert answer.status_code == 400 and "did not start in this browser" in answer.text
        assert await signed_in_as(victim) is None
    # The browser that started it may still finish it.
    assert (await client.get(callback)).status_code in (302, 303)


async def test_a_changed_or_missing_state_is_refused(client, tree, provider):
    await configure(tree, provider)
    page = await start(client, tree.email("partner"))
    callback = await provider.authorize(provider_url(page), tree.email("partner"))
    code = _code(callback)
    for query in (f"code={code}", f"code={code}&state=x{_state(callback)}", f"state={_state(callback)}&error=x"):
        answer = await client.get(f"/sso/callback?{query}")
        assert answer.status_code == 400
    assert await signed_in_as(client) is None


async def test_a_token_carrying_another_attempts_nonce_is_refused(tree, provider):
    """The code of one attempt brought back with the state of another: its ID token's nonce is not this one's."""
    await configure(tree, provider)
    providers = ProviderDirectory(allow_private=True)
    first = await flow.begin(tree.email("partner"), REDIRECT, None, utcnow(), providers)
    second = await flow.begin(tree.email("partner"), REDIRECT, None, utcnow(), providers)
    callback = await provider.authorize(second.url, tree.email("partner"))
    with pytest.raises(flow.TokenRefused) as refused:
        await flow.complete(first.state, _code(callback), REDIRECT, utcnow(), providers)
    assert "nonce" in refused.value.reason
    assert await SsoAttempt.count().where(SsoAttempt.used_at.is_not_null()) == 1


# --- The partner's choices ----------------------------------------------------------------


async def test_no_account_is_made_unless_the_partner_chose_so(client, tree, provider):
    await configure(tree, provider)
    done = await sso_sign_in(client, provider, "newcomer@partner.example")
    assert done.status_code == 400 and "has no portal account" in done.text
    assert not await User.exists().where(User.email == "newcomer@partner.example")


async def test_a_first_sign_in_makes_a_manager_of_the_partner_when_chosen(client, tree, provider):
    await configure(tree, provider, create_on_first_sign_in=True)
    provider.put_user("newcomer@partner.example", {"email": "newcomer@partner.example", "name": "Nia Newcomer"})
    done = await sso_sign_in(client, provider, "newcomer@partner.example")
    assert done.headers["location"] == "/dashboard"
    made = await User.select().where(User.email == "newcomer@partner.example").first()
    assert made["company"] == tree.partner["id"] and made["name"] == "Nia Newcomer"
    assert made["role"] == "account_manager"
    assert made["password_hash"] is None
    assert await AuditEntry.exists().where(
        (AuditEntry.action == "user.create_manager") & (AuditEntry.actor == made["id"])
    )


async def test_sso_only_refuses_the_staffs_passwords_and_reset_links(client, tree, provider):
    await configure(tree, provider, sso_only_for_staff=True)
    refused = await post_form(client, "/login", "/login", {"email": tree.email("sub"), "password": PASSWORD})
    assert refused.status_code == 400 and "signs its staff in through its own identity provider" in refused.text
    reset = await post_form(client, "/forgot-password", "/forgot-password", {"email": tree.email("partner")})
    assert reset.status_code == 400 and "no portal password to reset" in reset.text
    assert not await sign_in.request_password_reset(tree.email("sub"), utcnow(), _NoLimit())
    # A customer's manager is not the partner's staff: the password still works.
    await password_sign_in(client, tree.email("direct"))


async def test_sso_only_refuses_a_staff_address_of_another_domain(client, tree):
    """The rule is the person's company, not their address."""
    actor = await load_actor(tree.managers["partner"]["id"], None)
    await sso_settings.save(
        actor,
        issuer="https://login.example.com",
        client_id="c",
        client_secret="s",
        domains="partner.example",
        create_on_first_sign_in=False,
        sso_only_for_staff=True,
        trust_provider_mfa=False,
        now=utcnow(),
        allow_private=False,
    )
    elsewhere = await add_user(tree.partner, "contractor@elsewhere.example")
    refused = await post_form(client, "/login", "/login", {"email": elsewhere["email"], "password": PASSWORD})
    assert refused.status_code == 400 and "own identity provider" in refused.text


async def test_the_partners_second_factor_applies_unless_it_trusts_the_providers(client, app, tree, provider):
    actor = await load_actor(tree.managers["partner"]["id"], None)
    await partner_settings.save_two_factor(actor, staff=True, customers=False, now=utcnow())
    await configure(tree, provider)
    done = await sso_sign_in(client, provider, tree.email("partner"))
    assert done.headers["location"] == "/two-factor/authenticator"
    await configure(tree, provider, trust_provider_mfa=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as other:
        done = await sso_sign_in(other, provider, tree.email("partner"))
        assert done.headers["location"] == "/dashboard"


class _NoLimit:
    async def hit(self, key, window, now):
        return sign_in.Hit(1, 60)

    async def forget(self, key):
        return None


# --- The settings page ------------------------------------------------------------------


async def test_the_settings_page_saves_tests_and_turns_off(client, tree, provider):
    await password_sign_in(client, tree.email("partner"))
    page = await client.get("/settings/sign-in/sso")
    assert page.status_code == 200 and "/sso/callback" in page.text
    csrf = csrf_of(page.text)
    form = {
        "_csrf_token": csrf,
        "issuer": provider.issuer,
        "client_id": "portal-client",
        "client_secret": "s3cret",
        "domains": "partner.example",
        "sso_only_for_staff": "on",
    }
    tested = await client.post("/settings/sign-in/sso/test", data=form)
    assert (
        tested.status_code == 200 and f"issuer {provider.issuer}" in tested.text and "Nothing was saved" in tested.text
    )
    assert await sso_settings.for_company(tree.partner["id"]) is None
    bad = await client.post("/settings/sign-in/sso", data=form | {"domains": "gmail.com"})
    assert bad.status_code == 400 and "public mail service" in bad.text and "s3cret" not in bad.text
    saved = await client.post("/settings/sign-in/sso", data=form)
    assert saved.status_code in (302, 303)
    config = await sso_settings.for_company(tree.partner["id"])
    assert config and config.domains == ("partner.example",) and config.sso_only_for_staff
    shown = await client.get("/settings/sign-in/sso")
    assert "s3cret" not in shown.text and "Single sign-on is saved" in shown.text
    # An empty secret keeps the saved one.
    await client.post("/settings/sign-in/sso", data=form | {"client_secret": "", "_csrf_token": csrf_of(shown.text)})
    assert (await sso_settings.for_company(tree.partner["id"])).client_secret == "s3cret"
    actions = [
        row["action"] for row in await AuditEntry.select(AuditEntry.action).where(AuditEntry.action.like("sso.%"))
    ]
    assert actions == ["sso.save", "sso.save"]
    off = await client.post("/settings/sign-in/sso/remove", data={"_csrf_token": csrf_of(shown.text)})
    assert off.status_code in (302, 303) and await sso_settings.for_company(tree.partner["id"]) is None


async def test_a_customer_manager_has_no_sso_settings(client, tree):
    await password_sign_in(client, tree.email("direct"))
    assert (await client.get("/settings/sign-in/sso")).status_code == 403


# --- The signature ------------------------------------------------------------------------


async def test_a_token_signed_by_another_key_or_unsigned_is_refused(provider):
    """Right issuer, audience, nonce and times, but not signed by a key of the provider's set."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    providers = ProviderDirectory(allow_private=True)
    now = utcnow()
    discovery = await providers.discover(provider.issuer, now)
    keys = await providers.keys(discovery, now)
    claims = {
        "iss": discovery.issuer,
        "aud": "portal-client",
        "sub": "someone",
        "email": "manager@partner.example",
        "nonce": "n",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 600,
    }
    forged = jwt.encode({"alg": "RS256", "kid": keys["keys"][0].get("kid", "k")}, claims, RSAKey.generate_key(2048))
    with pytest.raises(flow.TokenRefused) as refused:
        flow.verify_id_token(forged, keys, discovery, "portal-client", "n", now)
    assert refused.value.reason.startswith("signature")
    header = _b64({"alg": "none"})
    unsigned = f"{header}.{_b64(claims)}."
    with pytest.raises(flow.TokenRefused) as refused:
        flow.verify_id_token(unsigned, keys, discovery, "portal-client", "n", now)
    assert refused.value.reason.startswith("signature")


def _b64(value: dict) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
