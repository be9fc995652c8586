"""A small tenant tree for tests, built through the domain's own insert functions.

Acme MSP (partner)                    Other MSP (partner, another tenant)
├── Acme North (sub_partner)          └── Other Customer (customer)
│   └── North Customer (customer)
└── Direct Customer (customer)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from argon2 import PasswordHasher

from portal import db
from portal.domain.companies import insert_company
from portal.tables import MANAGER_ROLES, User
from tests.support import PASSWORD

T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


@cache
def _hash() -> str:
    """The test managers' password, hashed at argon2's cheapest parameters: a hash
    carries its parameters, so every sign-in of the suite verifies in microseconds
    instead of the production cost (tens of milliseconds of CPU, more on a busy
    machine). Passwords set through the portal itself are hashed as in production
    (tests/test_passwords.py checks those parameters)."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


@dataclass
class Tree:
    partner: dict
    sub: dict
    north: dict
    direct: dict
    other: dict
    other_customer: dict
    managers: dict[str, dict]  # company key → manager user row

    def email(self, key: str) -> str:
        return self.managers[key]["email"]


async def add_user(
    company: dict, email: str, role: str = "manager", name: str | None = None, password: bool = True
) -> dict:
    """A "manager" of a partner or sub-partner is its partner admin, as migration 0025 made them."""
    if role == "manager" and company["kind"] != "customer":
        role = "partner_admin"
    row = await User.insert(
        User(
            company=company["id"],
            email=email,
            name=name or email.split("@")[0].title(),
            role=role,
            password_hash=_hash() if password and role in MANAGER_ROLES else None,
            created_at=T0,
        )
    )
    return {"id": row[0]["id"], "email": email, "company": company["id"], "role": role}


async def build_tree() -> Tree:
    async with db.write_transaction():
        partner = await insert_company("Acme MSP", "partner", None, T0)
        sub = await insert_company("Acme North", "sub_partner", partner, T0)
        north = await insert_company("North Customer", "customer", sub, T0)
        direct = await insert_company("Direct Customer", "customer", partner, T0)
        other = await insert_company("Other MSP", "partner", None, T0)
        other_customer = await insert_company("Other Customer", "customer", other, T0)
    companies = {
        "partner": partner,
        "sub": sub,
        "north": north,
        "direct": direct,
        "other": other,
        "other_customer": other_customer,
    }
    managers = {key: await add_user(c, f"manager@{key.replace('_', '-')}.example") for key, c in companies.items()}
    return Tree(**companies, managers=managers)
