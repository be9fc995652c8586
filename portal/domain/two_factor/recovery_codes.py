"""Ten one-time codes for when the phone or the security key is lost. Shown once
when made; only their sha256 is kept (each holds 80 random bits, so the hash
cannot be reversed by trying codes)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import cast

from portal.tables.sign_in import RecoveryCode

COUNT = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without doubt
_LENGTH = 16  # 16 of 31 symbols: 79 bits


def _hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _LENGTH, 4))


async def replace(user_id: int) -> list[str]:
    """A fresh set of codes; the old ones work no more. Call inside the
    transaction of the change that causes it."""
    codes = [_new_code() for _ in range(COUNT)]
    await RecoveryCode.delete().where(RecoveryCode.user == user_id)
    await RecoveryCode.insert(*(RecoveryCode(user=user_id, code_hash=_hash(code)) for code in codes))
    return codes


async def use(user_id: int, code: str, now: datetime) -> bool:
    """Whether `code` is one of the user's unused codes; if so it is used up
    (the update wins once, however many requests bring it at once)."""
    if len(normalise(code)) != _LENGTH:
        return False
    used = (
        await RecoveryCode.update({RecoveryCode.used_at: now})
        .where(
            (RecoveryCode.user == user_id) & (RecoveryCode.code_hash == _hash(code)) & RecoveryCode.used_at.is_null()
        )
        .returning(RecoveryCode.id)
    )
    return bool(used)


async def remaining(user_id: int) -> int:
    return cast(
        "int", await RecoveryCode.count().where((RecoveryCode.user == user_id) & RecoveryCode.used_at.is_null())
    )
