"""Demo data for `make run`: a partner, two sub-partners, twelve customers,
240 learners and a manager at every level. Same seed, same data."""

from __future__ import annotations

import random
from datetime import datetime

from portal import db
from portal.domain.companies import insert_company
from portal.domain.passwords import hash_password
from portal.tables import Company, User

DEMO_PASSWORD = "licences-demo"
LEARNERS_PER_CUSTOMER = 20

# (e-mail, name, company) of the logins the README lists.
DEMO_LOGINS = [
    ("alex.morgan@northwind-msp.example", "Alex Morgan", "Northwind MSP"),
    ("priya.shah@harbor-it.example", "Priya Shah", "Harbor IT"),
    ("sam.lee@summit-secure.example", "Sam Lee", "Summit Secure"),
    ("dana.wells@brightpath-dental.example", "Dana Wells", "Brightpath Dental"),
]
TREE = {
    "Northwind MSP": ["Brightpath Dental", "Cedar & Pine Law", "Orbit Logistics", "Riverside Clinic"],
    "Harbor IT": ["Bluewave Marine", "Copperleaf Accounting", "Greenfield School", "Harborview Hotel"],
    "Summit Secure": ["Alpine Outfitters", "Granite Builders", "Peak Pharmacy", "Summit Credit Union"],
}
FIRST = [
    "Ava",
    "Ben",
    "Chloe",
    "Daniel",
    "Ella",
    "Finn",
    "Grace",
    "Hugo",
    "Isla",
    "Jack",
    "Kara",
    "Liam",
    "Maya",
    "Noah",
    "Olivia",
    "Owen",
    "Poppy",
    "Ruby",
    "Theo",
    "Zara",
]
LAST = [
    "Adams",
    "Brown",
    "Clark",
    "Davies",
    "Evans",
    "Fisher",
    "Green",
    "Hughes",
    "Irwin",
    "Jones",
    "King",
    "Lewis",
    "Moore",
    "Nolan",
    "Owens",
    "Patel",
    "Quinn",
    "Reid",
    "Smith",
    "Turner",
]


def _domain(company_name: str) -> str:
    return (
        "".join(ch if ch.isalnum() else "-" for ch in company_name.lower()).replace("--", "-").strip("-") + ".example"
    )


async def load_demo(now: datetime) -> bool:
    """Load the demo tenant tree into an empty database. Returns False (and does
    nothing) when any company exists already."""
    if await Company.exists():
        return False
    rng = random.Random(2026)
    password_hash = hash_password(DEMO_PASSWORD)
    logins = {company: (email, name) for email, name, company in DEMO_LOGINS}
    async with db.write_transaction():
        partner = await insert_company("Northwind MSP", "partner", None, now)
        companies = {"Northwind MSP": partner}
        for sub in ("Harbor IT", "Summit Secure"):
            companies[sub] = await insert_company(sub, "sub_partner", partner, now)
        customers = []
        for parent_name, names in TREE.items():
            for name in names:
                customers.append(await insert_company(name, "customer", companies[parent_name], now))
                companies[name] = customers[-1]

        users = []
        for company_name, company in companies.items():
            email, name = logins.get(company_name) or (
                f"manager@{_domain(company_name)}",
                f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            )
            users.append(
                User(
                    company=company["id"],
                    email=email,
                    name=name,
                    role="manager",
                    password_hash=password_hash,
                    created_at=now,
                )
            )
        for customer in customers:
            domain = _domain(customer["name"])
            for n in range(LEARNERS_PER_CUSTOMER):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                users.append(
                    User(
                        company=customer["id"],
                        email=f"{first}.{last}.{n}@{domain}".lower(),
                        name=f"{first} {last}",
                        role="learner",
                        created_at=now,
                    )
                )
        await db.insert_many(User, users)
    return True
