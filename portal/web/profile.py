"""The signed-in manager's profile: who they are, and whether they get reminder e-mails."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import notifications
from portal.domain.clock import utcnow
from portal.web.flash import flash
from portal.web.render import render
from portal.web.session import CurrentActor


class ProfileController(Controller):
    path = "/profile"

    @get("/")
    async def profile(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        return render(request, "pages/profile.html", {"reminders": await notifications.reminders_on(actor)})

    @post("/")
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
        return Redirect("/profile")
