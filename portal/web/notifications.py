"""Notifications: the e-mails the portal sent (or keeps, or could not send)
about the companies a manager may see; one e-mail as it was sent; "Resend";
the partner's e-mail settings (reminder days, copies, Reply-To, sender name)."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import outbox, partner_settings
from portal.domain.access import require_partner_manager
from portal.domain.clock import utcnow
from portal.domain.emails.content import render_rows, with_subjects
from portal.domain.emails.kinds import LABELS
from portal.domain.errors import ValidationFailed
from portal.web.cursors import list_cursor_key
from portal.web.flash import flash
from portal.web.forms import text
from portal.web.render import render
from portal.web.session import CurrentActor


def _base_url(request: HTMXRequest) -> str:
    """Where the portal is reached from outside, for the links of the e-mails shown."""
    return request.app.state.services.base_url


# The e-mail's own HTML is shown in a sandboxed frame from this address: no
# script, no form, no request to anywhere, and only the portal may frame it.
MESSAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
)


class NotificationController(Controller):
    path = "/notifications"

    @get("/", name="notifications.notifications")
    async def notifications(self, request: HTMXRequest, actor: CurrentActor, cursor: FromQuery[str] = "") -> Template:
        filters = outbox.EMAIL_FILTERS.parse(request.query_params)
        active = outbox.EMAIL_FILTERS.as_query(filters)
        backlog = await outbox.backlog(utcnow()) if actor.is_partner_manager else None
        emails = await outbox.list_emails(actor, cursor or None, list_cursor_key(request), filters)
        return render(
            request,
            "pages/notifications.html",
            {
                "emails": await with_subjects(emails, _base_url(request)),
                "filters": active,
                "query": urlencode(active),
                "statuses": outbox.STATUSES,
                "kinds": LABELS,
                "companies": await outbox.filter_companies(actor),
                "backlog": backlog,
                "backlog_age": outbox.describe_age(backlog["oldest_age"]) if backlog else "",
            },
            fragments={"notification-results": "partials/notifications/_results.html"},
        )

    @get("/settings", name="notifications.settings")
    async def settings(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        require_partner_manager(actor)
        return render(request, "pages/email_settings.html", await _settings_context(actor))

    @post("/settings", name="notifications.save_settings")
    async def save_settings(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        """Reminder days, copies, Reply-To and sender name for the partner's own
        company and the companies under it (a sub-partner's own settings win below it)."""
        form = await request.form()
        entered = {name: text(form.get(name), 300) for name in ("reminder_days", "reply_to", "sender_name")}
        copy = form.get("copy_account_managers") == "on"
        before = await partner_settings.for_path(actor.company_path)
        try:
            saved = await partner_settings.save_emails(
                actor, actor.company_id, copy_account_managers=copy, now=utcnow(), **entered
            )
        except ValidationFailed as refused:
            context = await _settings_context(actor) | {"errors": refused.errors, "values": entered | {"copy": copy}}
            return render(request, "pages/email_settings.html", context, status_code=400)
        flash(request, _settings_said(actor.company_name, before, saved))
        return Redirect(request.app.route_reverse("notifications.settings"), status_code=303)

    @get("/{email_id:int}", name="notifications.notification")
    async def notification(self, request: HTMXRequest, actor: CurrentActor, email_id: FromPath[int]) -> Template:
        return await self._page(request, actor, email_id)

    @get("/{email_id:int}/message.html", name="notifications.message_html")
    async def message_html(self, request: HTMXRequest, actor: CurrentActor, email_id: FromPath[int]) -> Response:
        """The HTML part, for the sandboxed frame of the e-mail's page."""
        row = await outbox.get_email(actor, email_id)
        content = (await render_rows([row], _base_url(request)))[row["id"]]
        return Response(
            content.html,
            media_type="text/html",
            headers={"content-security-policy": MESSAGE_POLICY, "x-frame-options": "SAMEORIGIN"},
        )

    @post("/{email_id:int}/resend", name="notifications.resend")
    async def resend(self, request: HTMXRequest, actor: CurrentActor, email_id: FromPath[int]) -> Template | Redirect:
        try:
            copy_id = await outbox.resend(actor, email_id, utcnow())
        except ValidationFailed as refused:
            return await self._page(request, actor, email_id, message=str(refused), status_code=409)
        flash(request, "A copy is queued; it goes out with the next delivery.")
        return Redirect(request.app.route_reverse("notifications.notification", email_id=copy_id))

    async def _page(
        self, request: HTMXRequest, actor, email_id: int, message: str | None = None, status_code: int = 200
    ) -> Template:
        row = await outbox.get_email(actor, email_id)
        content = (await render_rows([row], _base_url(request)))[row["id"]]
        return render(
            request,
            "pages/notification.html",
            {"e": row, "content": content, "kinds": LABELS, "message": message},
            status_code=status_code,
        )


@get("/outbox", name="notifications.outbox_moved")
async def outbox_moved(request: HTMXRequest, actor: CurrentActor) -> Redirect:
    """Licenses → E-mails became Notifications."""
    return Redirect(request.app.route_reverse("notifications.notifications"), status_code=301)


async def _settings_context(actor) -> dict:
    return {
        "settings": await partner_settings.for_path(actor.company_path),
        "errors": {},
        "values": {},
    }


def _days(days: tuple[int, ...]) -> str:
    return ", ".join(map(str, days))


def _settings_said(
    company: str, before: partner_settings.PartnerSettings, after: partner_settings.PartnerSettings
) -> str:
    """What saving changed, in words."""
    changes = []
    if after.reminder_days != before.reminder_days:
        changes.append(f"reminders now go {_days(after.reminder_days)} days before licenses end")
    if after.copy_account_managers != before.copy_account_managers:
        changes.append("account managers get a copy" if after.copy_account_managers else "account managers get no copy")
    if after.reply_to != before.reply_to:
        changes.append(f"replies go to {after.reply_to or 'the first account manager'}")
    if after.sender_name != before.sender_name:
        changes.append(f"e-mails come from {after.sender_name or company}")
    if not changes:
        return f"Nothing changed in the e-mail settings of {company} and the companies under it."
    said = "; ".join(changes)
    return f"{said[0].upper()}{said[1:]}, for {company} and the companies under it."
