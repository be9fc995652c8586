"""What signing in keeps beyond the password (migration portal_0019_two_factor):
the second factors a manager enrolled, and the sessions they have open.
portal/domain/two_factor/ and portal/domain/sessions.py read and write them."""

from __future__ import annotations

from piccolo.columns import ForeignKey, Integer, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from portal.tables import User


class TotpFactor(Table, tablename="totp_factor"):
    """An authenticator app: the shared secret (base32) and the newest time step
    a code was accepted for, so no code of that step or an earlier one works twice."""

    id: Serial  # see portal/tables.py

    user = ForeignKey(User, on_delete=OnDelete.cascade, unique=True)
    secret = Varchar(length=64)
    last_step = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())


class RecoveryCode(Table, tablename="recovery_code"):
    """One of the ten one-time codes handed out with a second factor; only the
    sha256 is kept (80 random bits each: nothing to guess offline)."""

    id: Serial

    user = ForeignKey(User, on_delete=OnDelete.cascade, index=False)
    code_hash = Varchar(length=64)
    used_at = Timestamptz(null=True, default=None)


class Passkey(Table, tablename="passkey"):
    """A WebAuthn credential: the authenticator keeps the private key, the portal
    its id, public key (both base64url) and the last signature counter seen."""

    id: Serial

    user = ForeignKey(User, on_delete=OnDelete.cascade, index=False)
    credential_id = Varchar(length=1024, unique=True)
    public_key = Text()
    sign_count = Integer(default=0)
    name = Varchar(length=100)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)


class UserSession(Table, tablename="user_session"):
    """One signed-in browser. The session in the store names this row; the row
    says when it signed in and was last seen, and whether it was ended from
    another session ("Sign out", "Sign out everywhere else") or by a change of
    password or second factor."""

    id: Serial

    user = ForeignKey(User, on_delete=OnDelete.cascade, index=False)
    browser = Varchar(length=200, default="")
    address = Varchar(length=64, default="")
    method = Varchar(length=20, default="password")  # password | authenticator | recovery_code | passkey
    signed_in_at = Timestamptz()
    last_seen_at = Timestamptz()
    ended_at = Timestamptz(null=True, default=None)


SIGN_IN_TABLES = [TotpFactor, RecoveryCode, Passkey, UserSession]
