"""The way from the sign-in form to a partner's identity provider (portal/web/sso.py takes the answer)."""

from __future__ import annotations

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from portal.domain.sso import flow
from portal.web.render import render

CALLBACK = "/sso/callback"
SSO_STATE = "sso_state"  # the state of the sign-in this browser started


def sso_redirect_uri(request: HTMXRequest) -> str:
    """The callback address the provider sends the browser back to, as registered with it."""
    return request.app.state.settings.base_url + CALLBACK


def continue_at_provider(request: HTMXRequest, started: flow.Started) -> Template:
    """A page that moves on to the provider by itself (and offers a link): a form
    may only post to the portal (form-action 'self'), and that holds for where its
    answer redirects to, so a redirect to the provider would be blocked."""
    request.set_session({**(request.session or {}), SSO_STATE: started.state})
    return render(request, "pages/sso_continue.html", {"url": started.url, "company": started.company})
