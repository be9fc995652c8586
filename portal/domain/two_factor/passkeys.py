"""Passkeys (WebAuthn, with the `webauthn` package): a second factor, and a way
in without a password when the authenticator verified its user (a PIN or a
fingerprint: something known or held, and the device itself).

The relying party is the portal's own address (BASE_URL): its host is the RP ID
and the whole address the only origin a browser's signature is accepted from.
Each ceremony's challenge is made here, kept by the caller (the server-side
session) and checked once. The signature counter is kept; a credential whose
counter goes backwards (a cloned key) is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast
from urllib.parse import urlsplit

import webauthn
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from portal import db
from portal.domain import audit, sessions
from portal.domain.errors import SignInRefused, ValidationFailed
from portal.domain.two_factor import recovery_codes
from portal.domain.two_factor.factors import Enrolled, has_any
from portal.tables.sign_in import Passkey

RP_NAME = "License Portal"
NAME_MAX = 100
NOT_ACCEPTED = "That passkey was not accepted. Try again, or sign in with your password."


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str

    @classmethod
    def for_base_url(cls, base_url: str) -> RelyingParty:
        return cls(id=urlsplit(base_url).hostname or "localhost", origin=base_url.rstrip("/"))


async def _credential_ids(user_id: int) -> list[bytes]:
    rows = await Passkey.select(Passkey.credential_id).where(Passkey.user == user_id)
    return [base64url_to_bytes(row["credential_id"]) for row in rows]


async def registration_options(rp: RelyingParty, user_id: int, email: str, name: str) -> tuple[str, bytes]:
    """The options the browser's navigator.credentials.create takes (JSON) and the
    challenge to keep. A discoverable credential, so it also signs in without an address."""
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_id=f"portal-user-{user_id}".encode(),
        user_name=email,
        user_display_name=name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.PREFERRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in await _credential_ids(user_id)],
    )
    return webauthn.options_to_json(options), options.challenge


async def register(
    rp: RelyingParty,
    user_id: int,
    company_id: int,
    credential: str,
    challenge: bytes,
    name: str,
    now: datetime,
    keep_session: int | None,
) -> Enrolled:
    """Keep the passkey the browser made for this challenge. Like any new factor it
    ends the user's other sessions; a user who had no factor gets recovery codes."""
    name = " ".join(name.split())[:NAME_MAX] or "Passkey"
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin
        )
    except (InvalidRegistrationResponse, InvalidJSONStructure, ValueError, KeyError):
        raise ValidationFailed({"passkey": "The passkey could not be added. Try again."}) from None
    async with db.write_transaction():
        had_factor = await has_any(user_id)
        await Passkey.insert(
            Passkey(
                user=user_id,
                credential_id=bytes_to_base64url(verified.credential_id),
                public_key=bytes_to_base64url(verified.credential_public_key),
                sign_count=verified.sign_count,
                name=name,
                created_at=now,
            )
        )
        codes = []
        if not had_factor or not await recovery_codes.remaining(user_id):
            codes = await recovery_codes.replace(user_id)
        generation = await sessions.end_others(user_id, keep_session, now)
        await audit.record(None, "two_factor.add_passkey", company_id, now, {"name": name}, actor_id=user_id)
    return Enrolled(codes, generation)


async def authentication_options(rp: RelyingParty, user_id: int | None) -> tuple[str, bytes]:
    """For the second step (the user's own passkeys) or for signing in without a
    password (any passkey of the portal the browser holds; the user verified)."""
    allowed = await _credential_ids(user_id) if user_id is not None else []
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        allow_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in allowed],
        user_verification=UserVerificationRequirement.PREFERRED
        if user_id is not None
        else UserVerificationRequirement.REQUIRED,
    )
    return webauthn.options_to_json(options), options.challenge


async def authenticate(rp: RelyingParty, credential: str, challenge: bytes, now: datetime, user_id: int | None) -> int:
    """The user whose passkey signed this challenge (the given user's, as a second
    factor; anyone's, verified by PIN or biometrics, without a password)."""
    try:
        parsed = parse_authentication_credential_json(credential)
    except (InvalidJSONStructure, ValueError, KeyError):
        raise SignInRefused(NOT_ACCEPTED) from None
    row = await Passkey.select().where(Passkey.credential_id == bytes_to_base64url(parsed.raw_id)).first()
    if row is None or (user_id is not None and row["user"] != user_id):
        raise SignInRefused(NOT_ACCEPTED)
    try:
        verified = webauthn.verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=base64url_to_bytes(row["public_key"]),
            credential_current_sign_count=row["sign_count"],
            require_user_verification=user_id is None,
        )
    except InvalidAuthenticationResponse:
        raise SignInRefused(NOT_ACCEPTED) from None
    await Passkey.update({Passkey.sign_count: verified.new_sign_count, Passkey.last_used_at: now}).where(
        Passkey.id == row["id"]
    )
    return cast("int", row["user"])


async def remove(
    user_id: int, company_id: int, passkey_id: int, required: bool, now: datetime, keep: int | None
) -> int:
    """Remove one of the user's passkeys (another user's id removes nothing);
    refused when a second factor is required and it is the user's last."""
    from portal.domain.two_factor.factors import of_user

    factors = await of_user(user_id)
    if not any(key["id"] == passkey_id for key in factors.passkeys):
        raise ValidationFailed({"passkey": "No such passkey of yours."})
    if required and not factors.authenticator and len(factors.passkeys) == 1:
        raise ValidationFailed({"passkey": "Your partner requires a second factor: add another before removing this."})
    async with db.write_transaction():
        await Passkey.delete().where((Passkey.id == passkey_id) & (Passkey.user == user_id))
        generation = await sessions.end_others(user_id, keep, now)
        await audit.record(None, "two_factor.remove_passkey", company_id, now, actor_id=user_id)
    return generation
