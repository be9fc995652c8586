"""What an API key may do, and the actor it acts as: its partner company, in the
name of the manager who made it (changes are audited as theirs, "by API key …")."""

from __future__ import annotations

from dataclasses import dataclass

from portal.domain.access import Actor
from portal.domain.entitlements import SCOPES, key_owner
from portal.domain.errors import PermissionDenied


@dataclass(frozen=True)
class KeyHolder:
    key_id: int
    name: str
    scopes: frozenset[str]
    actor: Actor

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"This key lacks the “{scope}” scope; a partner manager can make one that has it.")


def scopes_of(text: str) -> frozenset[str]:
    return frozenset(s for s in text.split(",") if s in SCOPES)


async def holder_of(key: str) -> KeyHolder | None:
    owner = await key_owner(key)
    if owner is None or owner["created_by"] is None:
        return None  # revoked, unknown, or its maker's account is gone
    actor = Actor(
        user_id=owner["created_by"],
        name=f"API key “{owner['name']}”",
        email="",
        company_id=owner["id"],
        company_name=owner["company_name"],
        company_kind=owner["kind"],
        company_path=owner["path"],
    )
    return KeyHolder(owner["key_id"], owner["name"], scopes_of(owner["scopes"]), actor)
