"""Sign in (password, then the second factor), sign out, "Forgot password?",
set a password from a one-time link."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import sessions, sign_in, users
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, SignInRefused, ValidationFailed
from portal.domain.sso import flow as sso_flow
from portal.domain.sso import settings as sso_settings
from portal.domain.two_factor import recovery_codes
from portal.services import Services
from portal.web import throttle
from portal.web.flash import flash
from portal.web.passkey_ceremony import second_step_passkey_options
from portal.web.render import render
from portal.web.session import (
    CODE_PAGE,
    ENROL_PAGE,
    GENERATION,
    PENDING,
    SESSION_ROW,
    describe_browser,
    pending,
    rotate_session,
    start_pending,
)
from portal.web.sso_start import continue_at_provider, sso_redirect_uri

ADDRESS_WINDOW = timedelta(minutes=1)
TOO_MANY_FROM_ADDRESS = "Too many sign-in attempts from your address. Wait a minute, then try again."
# "Forgot password?" from one client address: enough for a shared office, too few to flood anyone.
RESETS_PER_ADDRESS = 10
RESET_ADDRESS_WINDOW = timedelta(hours=1)
TOO_MANY_RESETS_FROM_ADDRESS = "Too many requests from your address. Try again in an hour."
ENTER_PASSWORD = "Enter your password."


def home_for(session: dict) -> str:
    if not session.get("user_id"):
        waiting = session.get(PENDING)
        if waiting and waiting.get("until", 0) >= time.time():
            return ENROL_PAGE if waiting["enrol"] else CODE_PAGE
        return "/login"
    if session.get("managing_id"):
        return f"/companies/{session['managing_id']}"
    if session.get("is_partner_manager"):
        return "/dashboard"
    return f"/companies/{session['company_id']}"


def safe_next(target: str | None) -> str | None:
    """Only same-site paths, so ?next= cannot send a user elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


class AuthController(Controller):
    @get("/", name="auth.root")
    async def root(self, request: Request) -> Redirect:
        return Redirect(home_for(request.session))

    @get("/login", name="auth.login_form")
    async def login_form(self, request: HTMXRequest, next: FromQuery[str | None] = None) -> Template:
        return render(request, "pages/login.html", {"next": safe_next(next), "email": "", "error": None})

    @post("/login", name="auth.login")
    async def login(self, request: HTMXRequest, services: NamedDependency[Services]) -> Template | Redirect:
        """The e-mail first: an address of a domain with single sign-on goes to its
        partner's provider when no password was typed; any other needs its password."""
        form = await request.form()
        email, password = str(form.get("email", ""))[:254], str(form.get("password", ""))
        next_path = safe_next(str(form.get("next", "")))
        context: dict[str, object] = {"next": next_path, "email": email}
        retry = await throttle.address_over_limit(
            request, "sign-in", request.app.state.sign_ins_per_minute, ADDRESS_WINDOW
        )
        if retry:
            return _too_many(request, "pages/login.html", context | {"error": TOO_MANY_FROM_ADDRESS}, retry)
        now = utcnow()
        if not password:
            try:
                started = await sso_flow.begin(email, sso_redirect_uri(request), next_path, now, services.sso_providers)
            except SignInRefused as refusal:
                return render(request, "pages/login.html", context | {"error": str(refusal)}, status_code=502)
            if started is not None:
                return continue_at_provider(request, started)
            context |= {"error": ENTER_PASSWORD, "focus_password": True}
            return render(request, "pages/login.html", context, status_code=400)
        try:
            user = await sign_in.authenticate(email, password, now, throttle.counter(request))
        except sign_in.Throttled as refusal:
            return _too_many(request, "pages/login.html", context | {"error": str(refusal)}, refusal.retry_after)
        except SignInRefused as refusal:
            return render(request, "pages/login.html", context | {"error": str(refusal)}, status_code=400)
        step = await sign_in.next_step(user)
        if step != "done":
            start_pending(request, user, enrol=step == "enrol", next_path=next_path)
            return Redirect(ENROL_PAGE if step == "enrol" else CODE_PAGE)
        await finish_sign_in(request, pending_from(user, next_path), "password", now)
        return Redirect(next_path or home_for(request.session))

    @get(CODE_PAGE, name="auth.code_form")
    async def code_form(self, request: HTMXRequest) -> Template | Redirect:
        waiting = pending(request)
        if waiting is None or waiting["enrol"]:
            return Redirect(home_for(request.session))
        return await _code_page(request, waiting, None)

    @post(CODE_PAGE, name="auth.code")
    async def code(self, request: HTMXRequest) -> Template | Redirect:
        """The second step: a code of the user's authenticator app, or a recovery code.
        Counted per client address with the passwords, and per user on its own."""
        waiting = pending(request)
        if waiting is None or waiting["enrol"]:
            flash(request, "Sign in again: the sign-in waited too long for its code.", "error")
            return Redirect(request.app.route_reverse("auth.login_form"))
        form = await request.form()
        retry = await throttle.address_over_limit(
            request, "sign-in", request.app.state.sign_ins_per_minute, ADDRESS_WINDOW
        )
        if retry:
            return _too_many(
                request, "pages/sign_in_code.html", await _code_context(request, waiting, TOO_MANY_FROM_ADDRESS), retry
            )
        now = utcnow()
        try:
            method = await sign_in.check_second_factor(
                waiting["user_id"], str(form.get("code", ""))[:64], now, throttle.counter(request)
            )
        except sign_in.Throttled as refusal:
            context = await _code_context(request, waiting, str(refusal))
            return _too_many(request, "pages/sign_in_code.html", context, refusal.retry_after)
        except SignInRefused as refusal:
            return await _code_page(request, waiting, str(refusal), 400)
        await finish_sign_in(request, waiting, method, now)
        if method == "recovery_code":
            left = await recovery_codes.remaining(waiting["user_id"])
            flash(
                request,
                f"You signed in with a recovery code; {left} left. "
                "Under Profile, set up your authenticator app again or make new codes.",
            )
        return Redirect(waiting["next"] or home_for(request.session))

    @post("/logout", name="auth.logout")
    async def logout(self, request: Request) -> Redirect:
        if request.session.get("user_id") and request.session.get(SESSION_ROW):
            await sessions.end(request.session["user_id"], request.session[SESSION_ROW], utcnow())
        request.clear_session()
        return Redirect(request.app.route_reverse("auth.login_form"))

    @get("/forgot-password", name="auth.forgot_password_form")
    async def forgot_password_form(self, request: HTMXRequest, email: FromQuery[str] = "") -> Template:
        return render(request, "pages/forgot_password.html", {"email": email[:254], "error": None})

    @post("/forgot-password", name="auth.forgot_password")
    async def forgot_password(self, request: HTMXRequest) -> Template:
        """The same answer whether or not the address is a manager's: only the
        mailbox's owner learns, by the e-mail, that it is."""
        form = await request.form()
        email = str(form.get("email", "")).strip()
        if not email:
            return render(
                request,
                "pages/forgot_password.html",
                {"email": "", "error": "Enter the e-mail address you sign in with."},
                status_code=400,
            )
        if use_sso := await sso_settings.reset_refusal(email):
            return render(request, "pages/forgot_password.html", {"email": email, "error": use_sso}, status_code=400)
        retry = await throttle.address_over_limit(request, "password-reset", RESETS_PER_ADDRESS, RESET_ADDRESS_WINDOW)
        if retry:
            context = {"email": email, "error": TOO_MANY_RESETS_FROM_ADDRESS}
            return _too_many(request, "pages/forgot_password.html", context, retry)
        now = utcnow()
        try:
            await sign_in.request_password_reset(email, now, throttle.counter(request))
        except sign_in.Throttled as refusal:
            context = {"email": email, "error": str(refusal)}
            return _too_many(request, "pages/forgot_password.html", context, refusal.retry_after)
        valid_minutes = int(sign_in.RESET_VALID_FOR.total_seconds() // 60)
        return render(request, "pages/forgot_password_sent.html", {"email": email, "valid_minutes": valid_minutes})

    @get("/set-password/{token:str}", name="auth.set_password_form")
    async def set_password_form(self, request: HTMXRequest, token: FromPath[str]) -> Template:
        try:
            owner = await users.token_owner(token, utcnow())
        except NotFound as missing:
            return render(request, "pages/set_password.html", {"gone": str(missing)}, status_code=404)
        return render(request, "pages/set_password.html", {"email": owner["email"], "errors": {}})

    @post("/set-password/{token:str}", name="auth.set_password")
    async def set_password(self, request: HTMXRequest, token: FromPath[str]) -> Template | Redirect:
        form = await request.form()
        now = utcnow()
        try:
            owner = await users.set_password(token, str(form.get("password", "")), str(form.get("confirm", "")), now)
        except NotFound as missing:
            return render(request, "pages/set_password.html", {"gone": str(missing)}, status_code=404)
        except ValidationFailed as invalid:
            owner = await users.token_owner(token, now)
            return render(
                request, "pages/set_password.html", {"email": owner["email"], "errors": invalid.errors}, status_code=400
            )
        # The owner proved their mailbox: whatever guesses were made at the account, let them in now.
        await sign_in.clear_sign_in_attempts(owner["email"], throttle.counter(request))
        if request.session.get("user_id") == owner["user_id"]:
            # The new password ended this session too: a fresh one carries the message.
            rotate_session(request)
            request.set_session({})
        flash(request, "Your password is set. Sign in with it.")
        return Redirect(request.app.route_reverse("auth.login_form"))


async def _code_context(request: Request, waiting: dict, error: str | None) -> dict:
    return {"error": error, "passkey_options": await second_step_passkey_options(request, waiting["user_id"])}


async def _code_page(request: HTMXRequest, waiting: dict, error: str | None, status: int = 200) -> Template:
    return render(request, "pages/sign_in_code.html", await _code_context(request, waiting, error), status_code=status)


def pending_from(user: dict, next_path: str | None) -> dict:
    """What finish_sign_in needs, for a user who needs no second factor."""
    return {
        "user_id": user["id"],
        "company_id": user["company"],
        "is_partner_manager": user["company_kind"] != "customer",
        "generation": user["session_generation"],
        "next": next_path,
    }


async def finish_sign_in(request: Request, who: dict, method: str, now: datetime) -> None:
    """The whole sign-in is done: a fresh session id, a row the user sees under
    Profile, set-password links voided, and the audit entry (by a job)."""
    session_row = await sessions.open_session(
        who["user_id"],
        describe_browser(request.headers.get("user-agent", "")),
        throttle.client_address(request),
        method,
        now,
    )
    await sign_in.signed_in(who["user_id"], now)
    rotate_session(request)
    request.set_session(
        {
            "user_id": who["user_id"],
            "company_id": who["company_id"],
            "is_partner_manager": who["is_partner_manager"],
            GENERATION: who["generation"],
            SESSION_ROW: session_row,
        }
    )
    await request.app.state.jobs.enqueue(
        "record_sign_in",
        who["user_id"],
        who["company_id"],
        now,
        method,
        job_id=f"sign-in:{who['user_id']}:{now.isoformat()}",
    )


def _too_many(request: HTMXRequest, page: str, context: dict, retry_after: int) -> Template:
    response = render(request, page, context, status_code=429)
    response.headers["Retry-After"] = str(retry_after)
    return response
