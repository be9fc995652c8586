"""One sign-in through a partner's identity provider (OpenID Connect, the
authorization code flow with PKCE), with authlib as the client."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from portal import db
from portal.domain.audit import entries as audit
from portal.domain.errors import SignInRefused
from portal.domain.sso.provider import Discovery, ProviderDirectory, ProviderUnreachable
from portal.domain.sso.settings import ProviderSettings, by_id, domain_of, for_email
from portal.domain.users import SIGN_IN_COLUMNS, holds_read_only_credit, normalise_email
from portal.tables import MANAGER_ROLES, Role, User
from portal.tables.sso import SsoAttempt

ATTEMPT_VALID_FOR = timedelta(minutes=10)
# Clocks of the portal and the provider may differ a little.
LEEWAY_SECONDS = 60
SCOPE = "openid email profile"
# Asymmetric only: a key set holds public keys, and "none" or a shared secret proves nothing.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

STALE = "This sign-in was used already or took too long. Sign in again."
PROVIDER_DOWN = "Your organisation's sign-in service could not be reached. Try again in a minute."
NOT_PROVEN = "Your organisation's sign-in service did not prove who you are. Sign in again."
NO_EMAIL = "Your organisation's sign-in service did not give a verified e-mail address."
NOT_THEIR_DOMAIN = "{company}'s sign-in service answered for {email}, which is not of its domains."
OTHER_PARTNER = "{email} is not a manager under {company}: sign in with your password."
NO_ACCOUNT = "{email} has no portal account. Ask a partner manager at {company} to add you."
CANNOT_SIGN_IN = "This account cannot sign in."


class TokenRefused(SignInRefused):
    """The ID token failed a check; `reason` says which, for the log and the tests."""

    def __init__(self, reason: str) -> None:
        super().__init__(NOT_PROVEN)
        self.reason = reason


@dataclass(frozen=True)
class Started:
    url: str  # where the browser goes: the provider's authorization endpoint
    state: str  # the browser's session keeps it, so the answer comes back to the same browser
    company: str  # the partner whose provider it is


@dataclass(frozen=True)
class SignedIn:
    user: dict[str, Any]  # as portal.domain.sign_in.authenticate returns one
    trust_provider_mfa: bool
    created: bool
    next_path: str | None


def _client(config: ProviderSettings, redirect_uri: str, providers: ProviderDirectory) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        token_endpoint_auth_method="client_secret_basic",
        code_challenge_method="S256",
        timeout=providers.timeout,
    )


async def begin(
    email: str, redirect_uri: str, next_path: str | None, now: datetime, providers: ProviderDirectory
) -> Started | None:
    """Where to send the browser for an address whose domain has a provider; None
    when it has none (the address signs in with a password)."""
    config = await for_email(email)
    if config is None:
        return None
    try:
        discovery = await providers.discover(config.issuer, now)
    except ProviderUnreachable:
        raise SignInRefused(PROVIDER_DOWN) from None
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    await SsoAttempt.insert(
        SsoAttempt(
            config=config.id,
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            next_path=(next_path or "")[:500],
            created_at=now,
            expires_at=now + ATTEMPT_VALID_FOR,
        )
    )
    async with _client(config, redirect_uri, providers) as client:
        url, _ = client.create_authorization_url(
            discovery.authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier, login_hint=email
        )
    return Started(url=url, state=state, company=config.company_name)


async def forget_finished_attempts(now: datetime) -> int:
    """Delete the sign-ins sent to a provider that can no longer come back (past
    their time, answered or not): nothing reads them again. Returns how many."""
    gone = await SsoAttempt.delete().where(SsoAttempt.expires_at <= now).returning(SsoAttempt.id)
    return len(gone)


async def _take_attempt(state: str, now: datetime) -> dict[str, Any]:
    """The attempt, marked used in the same statement: of two arrivals of one
    answer, exactly one gets it."""
    async with db.write_transaction():
        taken = (
            await SsoAttempt.update({SsoAttempt.used_at: now})
            .where((SsoAttempt.state == state) & SsoAttempt.used_at.is_null() & (SsoAttempt.expires_at > now))
            .returning(SsoAttempt.config, SsoAttempt.nonce, SsoAttempt.code_verifier, SsoAttempt.next_path)
        )
    if not taken:
        raise SignInRefused(STALE)
    return cast("dict[str, Any]", taken[0])


def verify_id_token(
    id_token: str, keys: dict[str, Any], discovery: Discovery, client_id: str, nonce: str, now: datetime
) -> dict[str, Any]:
    """The ID token's claims once its signature (by a key of the provider's set),
    issuer, audience (and authorized party), expiry, issue time and nonce are right."""
    allowed = [a for a in discovery.signing_algorithms if a in ALGORITHMS] or ["RS256"]
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=allowed)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as error:
        raise TokenRefused(f"signature: {type(error).__name__}") from None
    claims = CodeIDToken(
        token.claims,
        token.header,
        options={
            "iss": {"essential": True, "value": discovery.issuer},
            "aud": {"essential": True, "value": client_id},
            "exp": {"essential": True},
            "nonce": {"essential": True, "value": nonce},
        },
        params={"nonce": nonce, "client_id": client_id},
    )
    try:
        claims.validate(now=int(now.timestamp()), leeway=LEEWAY_SECONDS)
    except JoseError as error:
        claim = getattr(error, "claim", "") or ""
        raise TokenRefused(f"{error.error}{': ' + claim if claim else ''}") from None
    return dict(claims)


async def _id_token_claims(
    config: ProviderSettings,
    attempt: dict[str, Any],
    code: str,
    redirect_uri: str,
    now: datetime,
    providers: ProviderDirectory,
) -> dict[str, Any]:
    try:
        discovery = await providers.discover(config.issuer, now)
        await providers.check_address(discovery.token_endpoint)
        async with _client(config, redirect_uri, providers) as client:
            answer = await client.fetch_token(
                discovery.token_endpoint, code=code, code_verifier=attempt["code_verifier"]
            )
    except ProviderUnreachable:
        raise SignInRefused(PROVIDER_DOWN) from None
    except AuthlibBaseError as error:
        raise TokenRefused(f"token endpoint: {error.error}") from None
    except Exception as error:  # httpx's transport errors, an answer that is not JSON
        raise TokenRefused(f"token endpoint: {type(error).__name__}") from None
    id_token = answer.get("id_token") if isinstance(answer, dict) else None
    if not isinstance(id_token, str):
        raise TokenRefused("no id_token")
    try:
        keys = await providers.keys(discovery, now)
        try:
            return verify_id_token(id_token, keys, discovery, config.client_id, attempt["nonce"], now)
        except TokenRefused as refused:
            if not refused.reason.startswith("signature"):
                raise
            # A key the cached set lacks: the provider may have rotated its keys.
            keys = await providers.keys(discovery, now, fresh=True)
            return verify_id_token(id_token, keys, discovery, config.client_id, attempt["nonce"], now)
    except ProviderUnreachable:
        raise SignInRefused(PROVIDER_DOWN) from None


async def complete(state: str, code: str, redirect_uri: str, now: datetime, providers: ProviderDirectory) -> SignedIn:
    """The provider's answer: the manager it proves, or SignInRefused saying why."""
    attempt = await _take_attempt(state, now)
    config = await by_id(attempt["config"])
    if config is None:
        raise SignInRefused(STALE)
    claims = await _id_token_claims(config, attempt, code, redirect_uri, now, providers)
    email = claims.get("email")
    # Google and Okta say whether they checked the address; Entra ID gives only addresses of its tenant.
    if not isinstance(email, str) or claims.get("email_verified") in (False, "false"):
        raise SignInRefused(NO_EMAIL)
    try:
        email = normalise_email(email)
    except ValueError:
        raise SignInRefused(NO_EMAIL) from None
    if domain_of(email) not in config.domains:
        raise SignInRefused(NOT_THEIR_DOMAIN.format(company=config.company_name, email=email))
    user, created = await _manager(config, email, claims, now)
    return SignedIn(
        user=user, trust_provider_mfa=config.trust_provider_mfa, created=created, next_path=attempt["next_path"] or None
    )


async def _manager(
    config: ProviderSettings, email: str, claims: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], bool]:
    user = await User.select(*SIGN_IN_COLUMNS).where(User.email == email).first()
    if user is None:
        if not config.create_on_first_sign_in:
            raise SignInRefused(NO_ACCOUNT.format(email=email, company=config.company_name))
        return await _create_manager(config, email, claims, now), True
    # The provider answers for its partner's wing only, never for another partner's managers.
    if not user["company_path"].startswith(config.company_path):
        raise SignInRefused(OTHER_PARTNER.format(email=email, company=config.company_name))
    if user["role"] not in MANAGER_ROLES or not user["active"]:
        raise SignInRefused(CANNOT_SIGN_IN)
    if user["role"] == Role.READ_ONLY and not await holds_read_only_credit(user["id"], user["company"]):
        raise SignInRefused(CANNOT_SIGN_IN)
    return user, False


async def _create_manager(
    config: ProviderSettings, email: str, claims: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """A manager of the partner itself, without a password: they sign in through the
    provider. An account manager (customers, orders, licences): a partner admin gives
    more, or less, on the user's page."""
    name = " ".join(str(claims.get("name") or "").split())[:200] or email.split("@")[0]
    try:
        async with db.write_transaction():
            row = await User.insert(
                User(company=config.company_id, email=email, name=name, role=Role.ACCOUNT_MANAGER, created_at=now)
            ).returning(User.id)
            await audit.record(
                None,
                "user.create_manager",
                config.company_id,
                now,
                {"email": email, "by": "sso"},
                actor_id=row[0]["id"],
            )
    except Exception as exc:
        if not db.is_unique_violation(exc, "email"):
            raise
        # The same person's two first sign-ins at once: the other made the account.
    user = await User.select(*SIGN_IN_COLUMNS).where(User.email == email).first()
    if user is None or not user["company_path"].startswith(config.company_path):
        raise SignInRefused(CANNOT_SIGN_IN)
    return user
