"""Demo data for `make run`: a partner, two sub-partners, twelve customers,
240 learners, a manager at every level (and the partner's staff in every role), and a licence history in which every
step of the guides has something to show. Same seed, same data."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

from portal import db
from portal.domain.access import load_actor
from portal.domain.companies import insert_company
from portal.domain.licences import allocation
from portal.domain.orders import decisions, requests
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
# The demo partner's other staff, one of each role (Alex Morgan is its partner admin): e-mail, name, role.
DEMO_STAFF = [
    ("jordan.blake@northwind-msp.example", "Jordan Blake", "account_manager"),
    ("morgan.price@northwind-msp.example", "Morgan Price", "billing"),
    ("riley.chen@northwind-msp.example", "Riley Chen", "read_only"),
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
                    role="manager" if company["kind"] == "customer" else "partner_admin",
                    password_hash=password_hash,
                    created_at=now,
                )
            )
        users += [
            User(company=partner["id"], email=e, name=n, role=r, password_hash=password_hash, created_at=now)
            for e, n, r in DEMO_STAFF
        ]
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
    await _licence_history(partner, customers, now)
    return True


async def _licence_history(partner: dict, customers: list[dict], now: datetime) -> None:
    """Orders in every state and batches that ended, end within 72 hours, and run
    for months, made through the same rules a user goes through, back in time,
    so every tab of the guides has someone in it."""
    partner_manager = (
        await User.select(User.id).where((User.company == partner["id"]) & (User.role == "partner_admin")).first()
    )
    assert partner_manager is not None, "the demo partner was just made with its manager"
    actor = await load_actor(partner_manager["id"], None)
    assert actor is not None, "a manager just made can sign in"
    year = relativedelta(months=12)

    async def batch(customer: dict, seats: int, assigned_at: datetime, holders: list[int], po: str = "") -> dict:
        order = await requests.request_order(actor, customer["id"], seats, None, po, assigned_at - timedelta(days=2))
        made = await decisions.assign_order(actor, order["id"], assigned_at)
        if holders:
            await allocation.allocate(
                actor,
                customer["id"],
                allocation.Selection(user_ids=tuple(holders)),
                assigned_at + timedelta(days=1),
                batch_id=made["id"],
            )
        return made

    for n, customer in enumerate(customers):
        people = [
            row["id"]
            for row in await User.select(User.id)
            .where(User.company == customer["id"])
            .order_by(User.role)
            .order_by(User.id)
        ]  # learners, then the manager
        learners, manager = people[:-1], people[-1]
        # Ended a month ago: ten learners and the manager are expired.
        await batch(customer, 12, now - year - relativedelta(months=1), learners[:10] + [manager], f"PO-{1000 + n}")
        if n % 2 == 0:  # runs for eight more months
            await batch(customer, 8, now - relativedelta(months=4), learners[10:16])
        if n % 3 == 0:  # ends within 72 hours
            await batch(customer, 2, now - year + timedelta(hours=50), learners[16:18])
        if n == 0:  # fresh seats waiting for the guide's "Select All"
            await batch(customer, 25, now - timedelta(days=3), [])
    # Orders waiting for a partner manager, and one of each other ending.
    for n, customer in enumerate(customers[:4]):
        order = await requests.request_order(actor, customer["id"], 10 + 5 * n, None, "", now - timedelta(hours=6 * n))
        if n == 2:
            await decisions.cancel_order(actor, order["id"], now)
        if n == 3:
            await decisions.decline_order(actor, order["id"], "Please order through your new reseller contract.", now)
