"""Sign in, sign out, set a password from a one-time link."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import users
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, SignInRefused, ValidationFailed
from portal.web.render import render
from portal.web.session import rotate_session


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
        now = utcnow()
        try:
            user = await users.authenticate(email, password, now)
        except SignInRefused as refusal:
            return render(
                request, "pages/login.html", {"next": next_path, "email": email, "error": str(refusal)}, status_code=400
            )
        rotate_session(request)
        request.set_session(
            {
                "user_id": user["id"],
                "company_id": user["company"],
                "is_partner_manager": user["company_kind"] != "customer",
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
        try:
            await users.set_password(token, str(form.get("password", "")), str(form.get("confirm", "")), utcnow())
        except NotFound as missing:
            return render(request, "pages/set_password.html", {"gone": str(missing)}, status_code=404)
        except ValidationFailed as invalid:
            owner = await users.token_owner(token, utcnow())
            return render(
                request, "pages/set_password.html", {"email": owner["email"], "errors": invalid.errors}, status_code=400
            )
        return Redirect("/login?password_set=1")
