"""Sign in, sign out, "Forgot password?", set a password from a one-time link."""

from __future__ import annotations

from datetime import timedelta

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import sign_in, users
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, SignInRefused, ValidationFailed
from portal.web import throttle
from portal.web.flash import flash
from portal.web.render import render
from portal.web.session import GENERATION, rotate_session

ADDRESS_WINDOW = timedelta(minutes=1)
TOO_MANY_FROM_ADDRESS = "Too many sign-in attempts from your address. Wait a minute, then try again."
# "Forgot password?" from one client address: enough for a shared office, too few to flood anyone.
RESETS_PER_ADDRESS = 10
RESET_ADDRESS_WINDOW = timedelta(hours=1)
TOO_MANY_RESETS_FROM_ADDRESS = "Too many requests from your address. Try again in an hour."


def home_for(session: dict) -> str:
    if not session.get("user_id"):
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
    @get("/")
    async def root(self, request: Request) -> Redirect:
        return Redirect(home_for(request.session))

    @get("/login")
    async def login_form(self, request: HTMXRequest, next: FromQuery[str | None] = None) -> Template:
        return render(request, "pages/login.html", {"next": safe_next(next), "email": "", "error": None})

    @post("/login")
    async def login(self, request: HTMXRequest) -> Template | Redirect:
        form = await request.form()
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        next_path = safe_next(str(form.get("next", "")))
        context = {"next": next_path, "email": email}
        retry = await throttle.address_over_limit(
            request, "sign-in", request.app.state.sign_ins_per_minute, ADDRESS_WINDOW
        )
        if retry:
            return _too_many(request, "pages/login.html", context | {"error": TOO_MANY_FROM_ADDRESS}, retry)
        now = utcnow()
        try:
            user = await sign_in.authenticate(email, password, now, throttle.counter(request))
        except sign_in.Throttled as refusal:
            return _too_many(request, "pages/login.html", context | {"error": str(refusal)}, refusal.retry_after)
        except SignInRefused as refusal:
            return render(request, "pages/login.html", context | {"error": str(refusal)}, status_code=400)
        rotate_session(request)
        request.set_session(
            {
                "user_id": user["id"],
                "company_id": user["company"],
                "is_partner_manager": user["company_kind"] != "customer",
                GENERATION: user["session_generation"],
            }
        )
        await request.app.state.jobs.enqueue(
            "record_sign_in", user["id"], user["company"], now, job_id=f"sign-in:{user['id']}:{now.isoformat()}"
        )
        return Redirect(next_path or home_for(request.session))

    @post("/logout")
    async def logout(self, request: Request) -> Redirect:
        request.clear_session()
        return Redirect("/login")

    @get("/forgot-password")
    async def forgot_password_form(self, request: HTMXRequest, email: FromQuery[str] = "") -> Template:
        return render(request, "pages/forgot_password.html", {"email": email[:254], "error": None})

    @post("/forgot-password")
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

    @get("/set-password/{token:str}")
    async def set_password_form(self, request: HTMXRequest, token: FromPath[str]) -> Template:
        try:
            owner = await users.token_owner(token, utcnow())
        except NotFound as missing:
            return render(request, "pages/set_password.html", {"gone": str(missing)}, status_code=404)
        return render(request, "pages/set_password.html", {"email": owner["email"], "errors": {}})

    @post("/set-password/{token:str}")
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
        return Redirect("/login")


def _too_many(request: HTMXRequest, page: str, context: dict, retry_after: int) -> Template:
    response = render(request, page, context, status_code=429)
    response.headers["Retry-After"] = str(retry_after)
    return response
