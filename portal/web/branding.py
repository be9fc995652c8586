"""A partner's words and brand: Settings → E-mails lists every kind of e-mail,
each with an editor (its fields, a live preview over made-up values, Send me a
test, Reset to default); Settings → Brand takes a logo and a color. Also the
logo and the color's style sheet, which the partner's e-mails and its
customers' pages load."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain.access import require_partner_manager
from portal.domain.branding import brand as brands
from portal.domain.branding import sandbox, templates
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.web.flash import flash
from portal.web.forms import text
from portal.web.render import render
from portal.web.session import CurrentActor

# The logo's address is its digest: it never changes, so it may be kept for good.
_FOREVER = "public, max-age=31536000, immutable"
# A logo is an image and nothing else, even opened on its own.
_LOGO_POLICY = "default-src 'none'; img-src 'self'; style-src 'none'; sandbox; frame-ancestors 'none'"
_LOGO_BODY_LIMIT = brands.LOGO_LIMIT + 20_000


class BrandingController(Controller):
    path = "/settings"
    include_in_schema = False

    @get("/emails", name="branding.emails")
    async def emails(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        require_partner_manager(actor)
        own = await templates.own_kinds(actor)
        return render(request, "pages/branding_emails.html", {"kinds": templates.editable_kinds(), "own": own})

    @get("/emails/{kind:str}", name="branding.editor")
    async def editor(self, request: HTMXRequest, actor: CurrentActor, kind: FromPath[str]) -> Template:
        wording = await templates.wording(actor, kind)
        return await _editor(request, actor, kind, wording.subject, wording.body)

    @post("/emails/{kind:str}", name="branding.save")
    async def save(self, request: HTMXRequest, actor: CurrentActor, kind: FromPath[str]) -> Template | Redirect:
        subject, body = await _typed(request)
        try:
            saved = await templates.save(actor, kind, subject=subject, body=body, now=utcnow())
        except ValidationFailed as refused:
            return await _editor(request, actor, kind, subject, body, errors=refused.errors, status_code=400)
        flash(
            request,
            f"Saved: the e-mail “{saved.kind.label}” now goes in your words to the customers of "
            f"{actor.company_name} and the companies under it.",
        )
        return Redirect(request.app.route_reverse("branding.editor", kind=kind), status_code=303)

    @post("/emails/{kind:str}/preview", name="branding.preview")
    async def preview(self, request: HTMXRequest, actor: CurrentActor, kind: FromPath[str]) -> Template:
        """The preview of what is typed; the whole editor without JavaScript."""
        subject, body = await _typed(request)
        return await _editor(request, actor, kind, subject, body)

    @post("/emails/{kind:str}/test", name="branding.test")
    async def test(self, request: HTMXRequest, actor: CurrentActor, kind: FromPath[str]) -> Template | Redirect:
        subject, body = await _typed(request)
        try:
            address = await templates.send_test(actor, kind, subject=subject, body=body, now=utcnow())
        except ValidationFailed as refused:
            return await _editor(request, actor, kind, subject, body, errors=refused.errors, status_code=400)
        flash(
            request,
            f"A test of the text as typed is queued to {address}; it goes with the next delivery. Nothing is saved.",
        )
        return await _editor(request, actor, kind, subject, body)

    @post("/emails/{kind:str}/reset", name="branding.reset")
    async def reset(self, request: HTMXRequest, actor: CurrentActor, kind: FromPath[str]) -> Redirect:
        chosen = templates.editable_kind(kind)
        if await templates.reset(actor, kind, utcnow()):
            flash(request, f"The e-mail “{chosen.label}” goes in the standard words again.")
        else:
            flash(request, f"The e-mail “{chosen.label}” already went in the standard words; nothing changed.")
        return Redirect(request.app.route_reverse("branding.editor", kind=kind), status_code=303)

    @get("/brand", name="branding.brand")
    async def brand(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        require_partner_manager(actor)
        return render(request, "pages/branding_brand.html", {"own": await brands.own_brand(actor), "errors": {}})

    @post("/brand", request_max_body_size=_LOGO_BODY_LIMIT, name="branding.save_brand")
    async def save_brand(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        require_partner_manager(actor)
        form = await request.form()
        colour = text(form.get("colour"), 20)
        upload = form.get("logo")
        data = None
        if upload is not None and not isinstance(upload, str) and upload.filename:
            data = await upload.read(brands.LOGO_LIMIT + 1)
            await upload.close()
        try:
            before, after = await brands.save(
                actor, colour=colour, logo=data, remove_logo=form.get("remove_logo") == "on", now=utcnow()
            )
        except ValidationFailed as refused:
            own = await brands.own_brand(actor)
            context = {"own": own, "errors": refused.errors, "typed_colour": colour}
            return render(request, "pages/branding_brand.html", context, status_code=400)
        flash(request, _brand_said(actor.company_name, before, after))
        return Redirect(request.app.route_reverse("branding.brand"), status_code=303)


@get("/brand/logo/{digest:str}", include_in_schema=False, name="branding.brand_logo")
async def brand_logo(digest: FromPath[str]) -> Response:
    """A partner's logo, by its digest: in its e-mails and on its customers' pages."""
    found = await brands.logo(digest) if len(digest) == 64 else None
    if found is None:
        raise NotFoundException("No such logo.")
    data, media_type = found
    return Response(
        data, media_type=media_type, headers={"cache-control": _FOREVER, "content-security-policy": _LOGO_POLICY}
    )


@get("/brand/colour/{rrggbb:str}", include_in_schema=False, name="branding.brand_colour")
async def brand_colour(rrggbb: FromPath[str]) -> Response:
    """The style sheet that gives a partner's pages its color: --partner-color, and nothing
    a visitor could choose but six hexadecimal digits."""
    if not brands.is_colour(rrggbb):
        raise NotFoundException("No such color.")
    return Response(
        f":root {{ --partner-color: #{rrggbb}; }}\n", media_type="text/css", headers={"cache-control": _FOREVER}
    )


async def _typed(request: HTMXRequest) -> tuple[str, str]:
    form = await request.form()
    return text(form.get("subject"), sandbox.SUBJECT_LIMIT + 1), text(form.get("body"), sandbox.BODY_LIMIT + 1)


async def _editor(
    request: HTMXRequest,
    actor,
    kind_name: str,
    subject: str,
    body: str,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    wording = await templates.wording(actor, kind_name)
    kind = wording.kind
    preview = None
    problems = dict(errors or {})
    if not problems:
        try:
            base_url = request.app.state.services.base_url
            preview = templates.rendered(kind, subject, body.replace("\r\n", "\n"), actor.company_name, base_url)
        except sandbox.TemplateRefused as refused:
            problems[refused.refusal.field] = str(refused.refusal)
    return render(
        request,
        "pages/branding_editor.html",
        {
            "kind": kind,
            "wording": wording,
            "subject": subject,
            "body": body,
            "errors": problems,
            "preview": preview,
            "preview_brand": await brands.for_path(actor.company_path),
        },
        fragments={"email-preview": "partials/branding/_preview.html"},
        status_code=status_code,
    )


def _brand_said(company: str, before: brands.Brand, after: brands.Brand) -> str:
    changes = []
    if after.colour != before.colour:
        changes.append(f"the color is now {after.colour}" if after.colour else "the color is removed")
    if after.logo_digest != before.logo_digest:
        changes.append("the logo is new" if after.logo_digest else "the logo is removed")
    if not changes:
        return f"Nothing changed in the brand of {company}."
    said = " and ".join(changes)
    return f"Saved: {said}, in the e-mails of {company} and on its customers' pages."
