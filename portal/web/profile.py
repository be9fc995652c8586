"""The signed-in manager's profile: who they are, whether they get reminder
e-mails (and, a partner manager, the weekly digest), their password, second factors and the sessions they have open."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import notifications, partner_settings, sessions, sign_in, users
from portal.domain.access import Actor
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.two_factor import factors
from portal.web import throttle
from portal.web.flash import flash
from portal.web.render import render
from portal.web.session import GENERATION, CurrentActor, lifetimes


async def _page(request: HTMXRequest, account: Actor, errors: dict | None = None, status: int = 200) -> Template:
    return render(
        request,
        "pages/profile.html",
        {
            "reminders": await notifications.reminders_on(account),
            "digest": await notifications.digest_on(account),
            "factors": await factors.of_user(account.user_id),
            "required": await partner_settings.two_factor_required(account.company_path, account.company_kind),
            "sessions": await sessions.list_open(account.user_id, utcnow(), lifetimes(request)),
            "current_session": account.session_id,
            "idle_minutes": request.app.state.settings.session_idle_minutes,
            "max_hours": request.app.state.settings.session_max_hours,
            "errors": errors or {},
        },
        status_code=status,
    )


class ProfileController(Controller):
    path = "/profile"

    @get("/", name="profile.profile")
    async def profile(self, request: HTMXRequest, account: CurrentActor) -> Template:
        return await _page(request, account)

    @post("/", name="profile.save")
    async def save(self, request: HTMXRequest, actor: CurrentActor) -> Redirect:
        form = await request.form()
        on = form.get("reminders") == "on"
        if await notifications.set_reminders(actor, on, utcnow()):
            flash(
                request,
                "Reminder e-mails are on."
                if on
                else "Reminder e-mails are off; order and password e-mails still come.",
            )
        # Only a partner manager's form has the box: another's post leaves it as it is.
        digest = form.get("digest") == "on"
        if actor.is_partner_manager and await notifications.set_digest(actor, digest, utcnow()):
            flash(
                request,
                "The weekly digest is on: it comes on Mondays."
                if digest
                else "The weekly digest is off; you get no Monday summary of your customers.",
            )
        return Redirect(request.app.route_reverse("profile.profile"))

    @post("/password", name="profile.change_password")
    async def change_password(self, request: HTMXRequest, account: CurrentActor) -> Template | Redirect:
        form = await request.form()
        now = utcnow()
        fields = {name: str(form.get(name, ""))[:300] for name in ("current", "password", "confirm")}
        try:
            await sign_in.count_password_check(account.email, now, throttle.counter(request))
            generation = await users.change_password(
                account, fields["current"], fields["password"], fields["confirm"], now, account.session_id
            )
        except sign_in.Throttled as refusal:
            response = await _page(request, account, {"current": str(refusal)}, 429)
            response.headers["Retry-After"] = str(refusal.retry_after)
            return response
        except ValidationFailed as invalid:
            return await _page(request, account, invalid.errors, 400)
        request.set_session({**request.session, GENERATION: generation})
        flash(request, "Your password is changed. Every other session of yours was signed out.")
        return Redirect(request.app.route_reverse("profile.profile"))

    @post("/sessions/{session_id:int}/end", name="profile.end_session")
    async def end_session(self, request: HTMXRequest, account: CurrentActor, session_id: FromPath[int]) -> Redirect:
        if session_id == account.session_id:
            await sessions.end(account.user_id, session_id, utcnow())
            request.clear_session()
            return Redirect(request.app.route_reverse("auth.login_form"))
        if await sessions.end(account.user_id, session_id, utcnow()):
            flash(request, "That session is signed out.")
        else:
            flash(request, "That session had already ended.")
        return Redirect(request.app.route_reverse("profile.profile"))

    @post("/sessions/end-others", name="profile.end_others")
    async def end_others(self, request: HTMXRequest, account: CurrentActor) -> Redirect:
        generation = await sessions.end_others(account.user_id, account.session_id, utcnow())
        request.set_session({**request.session, GENERATION: generation})
        flash(request, "Every other session of yours is signed out.")
        return Redirect(request.app.route_reverse("profile.profile"))
