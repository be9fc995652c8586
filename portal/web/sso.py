"""Single sign-on: the way to the provider, its answer (/sso/callback), and the
partner's settings page (Profile → Sign-in settings → Single sign-on)."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, Parameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import sign_in
from portal.domain.clock import utcnow
from portal.domain.errors import SignInRefused, ValidationFailed
from portal.domain.sso import flow
from portal.domain.sso import settings as sso_settings
from portal.domain.sso.provider import ProviderUnreachable, check_issuer
from portal.services import Services
from portal.web.auth import finish_sign_in, home_for, pending_from
from portal.web.flash import flash
from portal.web.render import render
from portal.web.session import CODE_PAGE, ENROL_PAGE, CurrentActor, start_pending
from portal.web.sso_start import CALLBACK, SSO_STATE, sso_redirect_uri

log = logging.getLogger("portal.web.sso")
SETTINGS_PAGE = "/settings/sign-in/sso"
ServicesOf = NamedDependency[Services]
CHOICES = ("create_on_first_sign_in", "sso_only_for_staff", "trust_provider_mfa")
NOT_THIS_BROWSER = "This sign-in did not start in this browser, or it was finished already. Sign in again."
PROVIDER_SAID_NO = "Your organisation's sign-in service did not sign you in. Sign in again, or ask your IT."


def _refused(request: HTMXRequest, message: str) -> Template:
    return render(request, "pages/login.html", {"next": None, "email": "", "error": message}, status_code=400)


class SsoController(Controller):
    @get(CALLBACK, name="sso.callback")
    async def callback(
        self,
        request: HTMXRequest,
        services: ServicesOf,
        answered_state: Annotated[str, Parameter(query="state")] = "",
        code: FromQuery[str] = "",
        error: FromQuery[str] = "",
    ) -> Template | Redirect:
        state = answered_state
        expected = (request.session or {}).get(SSO_STATE)
        if not state or not isinstance(expected, str) or not hmac.compare_digest(state.encode(), expected.encode()):
            return _refused(request, NOT_THIS_BROWSER)
        request.set_session({k: v for k, v in request.session.items() if k != SSO_STATE})
        if error or not code:
            return _refused(request, PROVIDER_SAID_NO)
        now = utcnow()
        try:
            done = await flow.complete(state, code[:2000], sso_redirect_uri(request), now, services.sso_providers)
        except SignInRefused as refusal:
            # Which check failed is for whoever runs the portal, not for the person signing in.
            log.warning("single sign-on refused: %s", getattr(refusal, "reason", None) or refusal)
            return _refused(request, str(refusal))
        user = done.user
        if not done.trust_provider_mfa:
            step = await sign_in.next_step(user)
            if step != "done":
                start_pending(request, user, enrol=step == "enrol", next_path=done.next_path)
                return Redirect(ENROL_PAGE if step == "enrol" else CODE_PAGE)
        await finish_sign_in(request, pending_from(user, done.next_path), "sso", now)
        if done.created:
            flash(request, "Welcome: your portal account was made from your organisation's account.")
        return Redirect(done.next_path or home_for(request.session))

    @get(SETTINGS_PAGE, name="sso.settings_page")
    async def settings_page(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        config = await sso_settings.for_actor(actor)
        return _settings_page(request, config, _form_of(config), {})

    @post(SETTINGS_PAGE, name="sso.save")
    async def save(self, request: HTMXRequest, actor: CurrentActor, services: ServicesOf) -> Template | Redirect:
        form = await request.form()
        texts = {
            name: str(form.get(name, ""))[:limit]
            for name, limit in (("issuer", 600), ("client_id", 400), ("client_secret", 2100), ("domains", 6000))
        }
        choices = {name: form.get(name) == "on" for name in CHOICES}
        values = {**texts, **choices}
        try:
            saved = await sso_settings.save(
                actor,
                issuer=texts["issuer"],
                client_id=texts["client_id"],
                client_secret=texts["client_secret"],
                domains=texts["domains"],
                create_on_first_sign_in=choices["create_on_first_sign_in"],
                sso_only_for_staff=choices["sso_only_for_staff"],
                trust_provider_mfa=choices["trust_provider_mfa"],
                now=utcnow(),
                allow_private=services.sso_providers.allow_private,
            )
        except ValidationFailed as invalid:
            config = await sso_settings.for_actor(actor)
            shown = {**values, "client_secret": ""}
            return _settings_page(request, config, shown, invalid.errors, status=400)
        only = " Its staff can no longer sign in with a password." if saved.sso_only_for_staff else ""
        flash(
            request,
            f"Single sign-on is saved: addresses of {', '.join(saved.domains)} now sign in at {saved.issuer}.{only}",
        )
        return Redirect(SETTINGS_PAGE)

    @post(f"{SETTINGS_PAGE}/test", name="sso.test_connection")
    async def test_connection(self, request: HTMXRequest, actor: CurrentActor, services: ServicesOf) -> Template:
        """Fetches the discovery document and the keys of the issuer typed (or saved), saving nothing."""
        form = await request.form()
        config = await sso_settings.for_actor(actor)
        typed = str(form.get("issuer", ""))[:600] or (config.issuer if config else "")
        shown = {**_form_of(config), "issuer": typed}
        providers = services.sso_providers
        now = utcnow()
        try:
            issuer = check_issuer(typed, allow_private=providers.allow_private)
            discovery = await providers.discover(issuer, now, fresh=True)
            keys = await providers.keys(discovery, now, fresh=True)
        except ValidationFailed as invalid:
            return _settings_page(request, config, shown, invalid.errors, status=400)
        except ProviderUnreachable as down:
            return _settings_page(request, config, shown, {}, test=("error", f"The test failed: {down}"), status=400)
        said = (
            f"The provider answered: issuer {discovery.issuer}, sign-in at {discovery.authorization_endpoint}, "
            f"{len(keys['keys'])} signing key(s). Nothing was saved."
        )
        return _settings_page(request, config, shown, {}, test=("success", said))

    @post(f"{SETTINGS_PAGE}/remove", name="sso.remove")
    async def remove(self, request: HTMXRequest, actor: CurrentActor) -> Redirect:
        if await sso_settings.remove(actor, utcnow()):
            flash(request, "Single sign-on is off: everyone signs in with a password again.")
        return Redirect(SETTINGS_PAGE)


def _form_of(config: sso_settings.ProviderSettings | None) -> dict:
    if config is None:
        return {"issuer": "", "client_id": "", "client_secret": "", "domains": ""}
    return {
        "issuer": config.issuer,
        "client_id": config.client_id,
        "client_secret": "",
        "domains": ", ".join(config.domains),
        "create_on_first_sign_in": config.create_on_first_sign_in,
        "sso_only_for_staff": config.sso_only_for_staff,
        "trust_provider_mfa": config.trust_provider_mfa,
    }


def _settings_page(
    request: HTMXRequest,
    config: sso_settings.ProviderSettings | None,
    form: dict,
    errors: dict,
    test: tuple[str, str] | None = None,
    status: int = 200,
) -> Template:
    return render(
        request,
        "pages/sso_settings.html",
        {
            "config": config,
            "form": form,
            "errors": errors,
            "test": test,
            "callback": sso_redirect_uri(request),
        },
        status_code=status,
    )
