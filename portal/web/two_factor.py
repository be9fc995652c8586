"""Second factors: enrolling an authenticator app (from Profile, or straight after
the password when a partner requires it), recovery codes, removing the app, a
partner manager's reset of another manager's, and the partner's requirement."""

from __future__ import annotations

from dataclasses import dataclass

import segno
from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from markupsafe import Markup

from portal.domain import partner_settings, sign_in
from portal.domain.access import Actor, get_user
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, SignInRefused, ValidationFailed
from portal.domain.two_factor import factors, passkeys, totp
from portal.web.auth import finish_sign_in, home_for, pending_from
from portal.web.flash import flash
from portal.web.passkey_ceremony import keep_challenge, relying_party, take_challenge
from portal.web.render import render
from portal.web.session import CODE_PAGE, ENROL_PAGE, GENERATION, CurrentActor, pending, provide_account_holder

CANDIDATE = "totp_candidate"  # the secret shown for scanning, until a code proves the scan


@dataclass(frozen=True)
class Enroller:
    user_id: int
    company_id: int
    email: str
    actor: Actor | None  # signed in (from Profile); None: straight after the password
    waiting: dict | None  # the sign-in waiting for enrolment


async def _enroller(request: Request) -> Enroller:
    waiting = pending(request)
    if waiting and waiting["enrol"]:
        return Enroller(waiting["user_id"], waiting["company_id"], waiting["email"], None, waiting)
    actor = await provide_account_holder(request)  # else: to sign in, or to the code step
    return Enroller(actor.user_id, actor.company_id, actor.email, actor, None)


def _candidate(request: Request) -> str:
    """The secret offered to this browser, kept in its server-side session (never
    in a cookie or the page's form) until enrolment is done."""
    secret = request.session.get(CANDIDATE)
    if not secret:
        secret = totp.new_secret()
        request.set_session({**request.session, CANDIDATE: secret})
    return secret


def qr_svg(text: str) -> Markup:
    """The QR code as inline SVG, drawn on the server: no script, no request elsewhere."""
    svg = segno.make(text, error="m").svg_inline(scale=5, border=2, svgclass="qr", omitsize=True)
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1))


def _enrol_page(request: HTMXRequest, who: Enroller, errors: dict, status: int = 200) -> Template:
    secret = _candidate(request)
    return render(
        request,
        "pages/two_factor_enrol.html",
        {
            "qr": qr_svg(totp.provisioning_uri(secret, who.email)),
            "secret": totp.grouped(secret),
            "forced": who.waiting is not None,
            "errors": errors,
        },
        status_code=status,
    )


class TwoFactorController(Controller):
    @get(ENROL_PAGE, name="two_factor.enrol_form")
    async def enrol_form(self, request: HTMXRequest) -> Template:
        return _enrol_page(request, await _enroller(request), {})

    @post(ENROL_PAGE, name="two_factor.enrol")
    async def enrol(self, request: HTMXRequest) -> Template | Redirect:
        who = await _enroller(request)
        secret = request.session.get(CANDIDATE)
        if not secret:
            return _enrol_page(request, who, {"code": "Scan the new code below, then type the 6 digits."}, 400)
        form = await request.form()
        now = utcnow()
        keep = who.actor.session_id if who.actor else None
        try:
            enrolled = await factors.enrol_authenticator(
                who.user_id, who.company_id, secret, str(form.get("code", ""))[:64], now, keep
            )
        except ValidationFailed as invalid:
            return _enrol_page(request, who, invalid.errors, 400)
        if who.waiting is not None:
            await finish_sign_in(
                request, who.waiting | {"generation": enrolled.session_generation}, "authenticator", now
            )
            onward = who.waiting["next"] or home_for(request.session)
        else:
            session = {k: v for k, v in request.session.items() if k != CANDIDATE}
            request.set_session(session | {GENERATION: enrolled.session_generation})
            onward = "/profile"
        message = "Your authenticator app is set up. Every other session of yours was signed out."
        if not enrolled.recovery_codes:
            flash(request, message)
            return Redirect(onward)
        return render(
            request, "pages/recovery_codes.html", {"codes": enrolled.recovery_codes, "onward": onward, "done": message}
        )

    @post("/two-factor/recovery-codes", name="two_factor.new_codes")
    async def new_codes(self, request: HTMXRequest, account: CurrentActor) -> Template:
        codes = await factors.new_recovery_codes(account, utcnow())
        return render(
            request,
            "pages/recovery_codes.html",
            {"codes": codes, "onward": "/profile", "done": "New recovery codes are made; the old ones work no more."},
        )

    @post("/two-factor/authenticator/remove", name="two_factor.remove")
    async def remove(self, request: HTMXRequest, account: CurrentActor) -> Redirect:
        required = await partner_settings.two_factor_required(account.company_path, account.company_kind)
        try:
            generation = await factors.remove_authenticator(account, required, utcnow(), account.session_id)
        except ValidationFailed as invalid:
            flash(request, next(iter(invalid.errors.values())), "error")
            return Redirect(request.app.route_reverse("profile.profile"))
        request.set_session({**request.session, GENERATION: generation})
        flash(request, "Your authenticator app is removed. Every other session of yours was signed out.")
        return Redirect(request.app.route_reverse("profile.profile"))

    @post("/companies/{company_id:int}/users/{user_id:int}/second-factor/reset", name="two_factor.reset")
    async def reset(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], user_id: FromPath[int]
    ) -> Redirect:
        user = await get_user(actor, user_id)
        if user["company"] != company_id:
            raise NotFound("No such user.")
        await factors.reset(actor, user_id, utcnow())
        flash(
            request,
            f"{user['name']}'s second factor is reset: their sessions ended, and they were e-mailed. "
            "They sign in with their password and set up a new one.",
        )
        return Redirect(request.app.route_reverse("licences.show", company_id=company_id, user_id=user_id))

    @get("/settings/sign-in", name="two_factor.sign_in_settings")
    async def sign_in_settings(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        rule = await partner_settings.two_factor_rule(actor)
        return render(request, "pages/sign_in_settings.html", {"rule": rule})

    @post("/settings/sign-in", name="two_factor.save_sign_in_settings")
    async def save_sign_in_settings(self, request: HTMXRequest, actor: CurrentActor) -> Redirect:
        form = await request.form()
        staff, customers = form.get("staff") == "on", form.get("customers") == "on"
        await partner_settings.save_two_factor(actor, staff=staff, customers=customers, now=utcnow())
        said = {
            (True, True): "its staff and its customers' managers",
            (True, False): "its staff",
            (False, True): "its customers' managers",
        }
        if staff or customers:
            flash(
                request,
                f"{actor.company_name} now requires a second factor of {said[(staff, customers)]} "
                "when they next sign in.",
            )
        else:
            flash(request, f"{actor.company_name} requires no second factor now (a partner above it may still).")
        return Redirect(request.app.route_reverse("two_factor.sign_in_settings"))


# --- Passkeys -----------------------------------------------------------------------


class PasskeyController(Controller):
    @get("/two-factor/passkey", name="two_factor.new_passkey")
    async def new_passkey(self, request: HTMXRequest, account: CurrentActor) -> Template:
        return await _passkey_page(request, account, {})

    @post("/two-factor/passkey", name="two_factor.add_passkey")
    async def add_passkey(self, request: HTMXRequest, account: CurrentActor) -> Template | Redirect:
        form = await request.form()
        challenge = take_challenge(request)
        if challenge is None:
            return await _passkey_page(request, account, {"passkey": "Try again: the page was open too long."}, 400)
        try:
            enrolled = await passkeys.register(
                relying_party(request),
                account.user_id,
                account.company_id,
                str(form.get("credential", ""))[:20000],
                challenge,
                str(form.get("name", "")),
                utcnow(),
                account.session_id,
            )
        except ValidationFailed as invalid:
            return await _passkey_page(request, account, invalid.errors, 400)
        request.set_session({**request.session, GENERATION: enrolled.session_generation})
        message = "Your passkey is added. Every other session of yours was signed out."
        if not enrolled.recovery_codes:
            flash(request, message)
            return Redirect(request.app.route_reverse("profile.profile"))
        return render(
            request,
            "pages/recovery_codes.html",
            {"codes": enrolled.recovery_codes, "onward": "/profile", "done": message},
        )

    @post("/two-factor/passkeys/{passkey_id:int}/remove", name="two_factor.remove_passkey")
    async def remove_passkey(self, request: HTMXRequest, account: CurrentActor, passkey_id: FromPath[int]) -> Redirect:
        required = await partner_settings.two_factor_required(account.company_path, account.company_kind)
        try:
            generation = await passkeys.remove(
                account.user_id, account.company_id, passkey_id, required, utcnow(), account.session_id
            )
        except ValidationFailed as invalid:
            flash(request, next(iter(invalid.errors.values())), "error")
            return Redirect(request.app.route_reverse("profile.profile"))
        request.set_session({**request.session, GENERATION: generation})
        flash(request, "The passkey is removed. Every other session of yours was signed out.")
        return Redirect(request.app.route_reverse("profile.profile"))

    @get("/login/passkey", name="two_factor.passkey_sign_in_form")
    async def passkey_sign_in_form(self, request: HTMXRequest) -> Template:
        options, challenge = await passkeys.authentication_options(relying_party(request), None)
        keep_challenge(request, challenge)
        return render(request, "pages/sign_in_passkey.html", {"options": options, "error": None})

    @post("/login/passkey", name="two_factor.passkey_sign_in")
    async def passkey_sign_in(self, request: HTMXRequest) -> Template | Redirect:
        """Without a password: a passkey whose authenticator verified its user."""
        form = await request.form()
        challenge = take_challenge(request)
        now = utcnow()
        try:
            if challenge is None:
                raise SignInRefused(passkeys.NOT_ACCEPTED)
            user_id = await passkeys.authenticate(
                relying_party(request), str(form.get("credential", ""))[:20000], challenge, now, None
            )
            user = await sign_in.passkey_user(user_id)
        except SignInRefused as refusal:
            options, fresh = await passkeys.authentication_options(relying_party(request), None)
            keep_challenge(request, fresh)
            return render(
                request, "pages/sign_in_passkey.html", {"options": options, "error": str(refusal)}, status_code=400
            )
        await finish_sign_in(request, pending_from(user, None), "passkey", now)
        return Redirect(home_for(request.session))

    @post(f"{CODE_PAGE}/passkey", name="two_factor.passkey_second_factor")
    async def passkey_second_factor(self, request: HTMXRequest) -> Template | Redirect:
        """The second step with one of the user's passkeys."""
        waiting = pending(request)
        if waiting is None or waiting["enrol"]:
            return Redirect(request.app.route_reverse("auth.login_form"))
        form = await request.form()
        challenge = take_challenge(request)
        now = utcnow()
        try:
            if challenge is None:
                raise SignInRefused(passkeys.NOT_ACCEPTED)
            await passkeys.authenticate(
                relying_party(request), str(form.get("credential", ""))[:20000], challenge, now, waiting["user_id"]
            )
        except SignInRefused as refusal:
            flash(request, str(refusal), "error")
            return Redirect(CODE_PAGE)
        await finish_sign_in(request, waiting, "passkey", now)
        return Redirect(waiting["next"] or home_for(request.session))


async def _passkey_page(request: HTMXRequest, account: Actor, errors: dict, status: int = 200) -> Template:
    options, challenge = await passkeys.registration_options(
        relying_party(request), account.user_id, account.email, account.name
    )
    keep_challenge(request, challenge)
    return render(request, "pages/two_factor_passkey.html", {"options": options, "errors": errors}, status_code=status)
