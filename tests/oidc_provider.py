"""A real OpenID Connect provider on loopback for the SSO tests: the
`oidc-provider-mock` package (authlib's authorization server in a Flask app),
served by werkzeug on a thread. It signs ID tokens with its own RSA key,
publishes discovery and JWKS, checks client, redirect and PKCE-less codes once.

`answer_as`: paths whose requests the provider sees as addressed to another
host. It names its issuer after the Host header, so this makes it sign tokens
(or a discovery document) for a wrong issuer with its real key."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import urlsplit

import httpx
import oidc_provider_mock
import werkzeug.serving


@dataclass
class Provider:
    server: werkzeug.serving.BaseWSGIServer
    thread: threading.Thread
    answer_as: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def foreign_host(self) -> str:
        """Another name of the same server: its issuer is http://localhost:<port>, not the
        configured one (authlib's server refuses plain http to any other host name)."""
        return f"localhost:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()

    def put_user(self, sub: str, claims: dict) -> None:
        """What the provider says of `sub` (by default its e-mail is `sub` itself)."""
        httpx.put(f"{self.issuer}/users/{sub}", json=claims).raise_for_status()

    async def authorize(self, url: str, sub: str) -> str:
        """Sign in at the provider as `sub` (its form's "Authorize"); the path and
        query of the portal's callback it redirects the browser to."""
        async with httpx.AsyncClient() as http:
            answer = await http.post(unescape(url), data={"sub": sub})
        assert answer.status_code == 302, answer.text[:500]
        parts = urlsplit(answer.headers["location"])
        return f"{parts.path}?{parts.query}"


def start_provider() -> Provider:
    app = oidc_provider_mock.app(require_nonce=True)
    holder: dict[str, Provider] = {}

    def wsgi(environ, start_response):
        host = holder["provider"].answer_as.get(environ.get("PATH_INFO", ""))
        if host:
            environ["HTTP_HOST"] = host
        return app(environ, start_response)

    server = werkzeug.serving.make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    provider = Provider(server=server, thread=thread)
    holder["provider"] = provider
    thread.start()
    return provider
