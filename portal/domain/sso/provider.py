"""An OpenID provider as the portal sees it: its discovery document and its
signing keys, fetched with httpx and kept for a while by a `ProviderDirectory`.
The directory is made once per process (portal/services.py) and handed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from portal.domain.addresses import is_private, refused_address
from portal.domain.errors import ValidationFailed

DISCOVERY_PATH = "/.well-known/openid-configuration"
_NEEDED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


class ProviderUnreachable(Exception):
    """The provider could not be asked, or answered what no provider should: the message says which."""


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    signing_algorithms: tuple[str, ...]


def check_issuer(url: str, *, allow_private: bool) -> str:
    """The issuer as it is compared with the tokens' `iss`: https (plain http only
    where private addresses are allowed, as in development and tests), no query,
    no fragment, no trailing slash."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http") or parts.query or parts.fragment:
        raise ValidationFailed({"issuer": "Enter the issuer's address, such as https://login.example.com/tenant."})
    if parts.scheme == "http" and not allow_private:
        raise ValidationFailed({"issuer": "The issuer's address must start with https://."})
    if not allow_private and is_private(parts.hostname):
        raise ValidationFailed({"issuer": "This address is inside a private network; use the provider's public one."})
    if len(url) > 500:
        raise ValidationFailed({"issuer": "Use at most 500 characters."})
    return url


@dataclass
class ProviderDirectory:
    """Discovery documents and key sets by issuer, refetched after `max_age` and,
    for keys, when a token names a key the cached set lacks (the provider rotated)."""

    allow_private: bool = False
    max_age: timedelta = timedelta(hours=1)
    timeout: float = 10.0
    _discovery: dict[str, tuple[datetime, Discovery]] = field(default_factory=dict)
    _keys: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)

    async def check_address(self, url: str) -> None:
        """Refuse a URL of the provider's (its discovery, keys, token endpoint)
        whose name resolves inside a private network, unless this directory
        allows private addresses."""
        if not self.allow_private and (reason := await refused_address(url)):
            raise ProviderUnreachable(reason)

    async def _get_json(self, url: str) -> dict[str, Any]:
        await self.check_address(url)
        try:
            async with self.client() as http:
                answer = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"{url} could not be reached ({type(error).__name__}).") from None
        if answer.status_code != 200:
            raise ProviderUnreachable(f"{url} answered {answer.status_code}.")
        try:
            body = answer.json()
        except ValueError:
            raise ProviderUnreachable(f"{url} did not answer JSON.") from None
        if not isinstance(body, dict):
            raise ProviderUnreachable(f"{url} did not answer a JSON object.")
        return body

    async def discover(self, issuer: str, now: datetime, *, fresh: bool = False) -> Discovery:
        """The issuer's discovery document; its `issuer` must be the one asked for
        (OpenID Connect Discovery 1.0, section 4.3), or tokens could name another."""
        cached = self._discovery.get(issuer)
        if cached and not fresh and now - cached[0] < self.max_age:
            return cached[1]
        body = await self._get_json(issuer + DISCOVERY_PATH)
        missing = [key for key in _NEEDED if not isinstance(body.get(key), str)]
        if missing:
            raise ProviderUnreachable(f"The discovery document lacks {', '.join(missing)}.")
        if body["issuer"].rstrip("/") != issuer:
            raise ProviderUnreachable(f"The discovery document names another issuer ({body['issuer'][:200]}).")
        algorithms = body.get("id_token_signing_alg_values_supported") or ["RS256"]
        found = Discovery(
            issuer=body["issuer"],
            authorization_endpoint=body["authorization_endpoint"],
            token_endpoint=body["token_endpoint"],
            jwks_uri=body["jwks_uri"],
            signing_algorithms=tuple(str(a) for a in algorithms if isinstance(a, str)),
        )
        self._discovery[issuer] = (now, found)
        return found

    async def keys(self, discovery: Discovery, now: datetime, *, fresh: bool = False) -> dict[str, Any]:
        cached = self._keys.get(discovery.jwks_uri)
        if cached and not fresh and now - cached[0] < self.max_age:
            return cached[1]
        body = await self._get_json(discovery.jwks_uri)
        if not isinstance(body.get("keys"), list):
            raise ProviderUnreachable("The provider's key set has no keys.")
        self._keys[discovery.jwks_uri] = (now, body)
        return body
