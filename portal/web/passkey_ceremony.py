"""What the passkey pages share: the relying party (the portal's own address)
and each ceremony's challenge, kept in the server-side session and used once."""

from __future__ import annotations

from litestar import Request
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from portal.domain.two_factor import factors, passkeys

CHALLENGE = "passkey_challenge"  # the ceremony's challenge, used once


def relying_party(request: Request) -> passkeys.RelyingParty:
    return passkeys.RelyingParty.for_base_url(request.app.state.settings.base_url)


def keep_challenge(request: Request, challenge: bytes) -> None:
    request.set_session({**request.session, CHALLENGE: bytes_to_base64url(challenge)})


def take_challenge(request: Request) -> bytes | None:
    """The challenge this browser was given, removed: a signature answers it once."""
    kept = request.session.get(CHALLENGE)
    if not kept:
        return None
    request.set_session({k: v for k, v in request.session.items() if k != CHALLENGE})
    return base64url_to_bytes(kept)


async def second_step_passkey_options(request: Request, user_id: int) -> str | None:
    """The code page's passkey form, when the user has passkeys."""
    if not await factors.has_passkeys(user_id):
        return None
    options, challenge = await passkeys.authentication_options(relying_party(request), user_id)
    keep_challenge(request, challenge)
    return options
