"""Load a large, consistent dataset into a fresh PostgreSQL database.

    python -m bench.generate --database-url postgresql://postgres@127.0.0.1:5432/portal_bench

Drops and re-creates that database, applies the project's migrations, then
COPYs (asyncpg `copy_records_to_table`, not the ORM): 1 partner, 5
sub-partners, 2,000 customers (a manager each), 1,000,000 learners, 20,000
orders (half assigned, each with its batch) and 1,000,000 allocations whose
ends are spread over 18 months around now. "Bench Big Customer" has 60,000
learners: 50,000 whose batch ended 10 days ago, 10,000 on a running batch,
and a batch assigned yesterday with 55,000 free seats for "Select All".

Invariants (checked at the end, in SQL): batch.allocated = its allocations
<= seats; a user's licence_ends_at = max(ends_at) of their allocations;
batches only for assigned orders; the tabs' tally matches the users. Prints the time per step; --docs also writes
them into docs/benchmarks.md (as `make bench` does).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from dateutil.relativedelta import relativedelta

from bench import (
    BIG_CUSTOMER,
    BIG_MANAGER_EMAIL,
    DEFAULT_DATABASE_URL,
    PARTNER_EMAIL,
    PASSWORD,
    use_database,
)

SUB_PARTNERS = 5
CUSTOMERS = 2_000
LEARNERS = 1_000_000
ORDERS_PER_CUSTOMER = 10  # 2,000 x 10 = 20,000 orders
BATCHES_PER_CUSTOMER = 5  # of those, assigned
BIG_LEARNERS, BIG_EXPIRED = 60_000, 50_000
BIG_FREE_SEATS = 55_000
# Every 33rd learner is unlicensed and as many hold two seats (renewed), so
# there are exactly as many allocations as learners: 1,000,000.
EVERY = 33
TERM = relativedelta(months=12)  # Premium, as portal.domain.catalogue.term_end
SPREAD = timedelta(days=548)  # batches start over the last 18 months, so they end from -6 to +12 months

FIRST = "Ava Ben Chloe Daniel Ella Finn Grace Hugo Isla Jack Kara Liam Maya Noah Olivia Owen Poppy Ruby Theo Zara "
FIRST += "Aisha Bruno Carmen Dmitri Emeka Fatima Giulia Hiro Ines Jonas Kofi Lena Mateo Nadia Omar Priya Quinn Rosa"
LAST = "Adams Brown Clark Davies Evans Fischer Garcia Hughes Ito Jensen Khan Lopez Martin Nguyen Okafor Patel "
LAST += "Quist Rossi Silva Tanaka Usman Varga Walsh Xu Young Zimmer Berg Costa Dubois Engel Ford Gupta Hale Ivers"

COLUMNS = {
    "company": ("id", "name", "kind", "parent", "path", "created_at"),
    "portal_user": (
        "id", "company", "email", "name", "role", "password_hash", "active",
        "created_at", "licence_ends_at",
    ),
    "licence_order": (
        "id", "company", "product", "quantity", "status", "po_number", "requested_by",
        "requested_at", "decided_by", "decided_at", "decline_reason",
    ),
    "licence_batch": ("id", "order", "company", "product", "seats", "allocated", "starts_at", "ends_at"),
    "allocation": ("id", "batch", "user", "allocated_at", "allocated_by", "starts_at", "ends_at", "released_at"),
}  # fmt: skip


def _server_url(url: str) -> tuple[str, str]:
    """(URL of the maintenance database `postgres` on the same server, bench database name)."""
    parts = urlsplit(url)
    name = parts.path.strip("/")
    # This drops the database it is given: refuse anything not named for the bench.
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the database name must contain 'bench'")
    return urlunsplit(parts._replace(path="/postgres")), name


async def recreate_database(url: str) -> None:
    server, name = _server_url(url)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def migrate() -> tuple[int, int]:
    """The project's own migrations (schema, indexes, catalogue); returns the
    ids of the Premium and Free-trial products."""
    from portal import db
    from portal.domain.catalogue import PREMIUM, TRIAL, product_by_code

    await db.open_pool(max_size=2)
    try:
        await db.migrate()
        return (await product_by_code(PREMIUM))["id"], (await product_by_code(TRIAL))["id"]
    finally:
        await db.close_pool()


class Dataset:
    """Rows per table, built in memory (about 2 million tuples) with explicit ids."""

    def __init__(self, now: datetime, premium: int, trial: int, password_hash: str, seed: int = 1) -> None:
        self.now, self.premium, self.trial, self.password_hash = now, premium, trial, password_hash
        self.rng = random.Random(seed)
        self.rows: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        self.first, self.last = FIRST.split(), LAST.split()
        self.batch_count = 0

    def build(self) -> Dataset:
        self._tree()
        sizes = self._learner_counts()
        learner_id = 1 + len(self.rows["company"])  # user ids: managers first, one per company (same id)
        counted = 0  # learners of the other customers so far: "every 33rd" runs across customers
        for customer_id, size in sizes.items():
            if customer_id == self.big_id:
                self._big_customer(learner_id)
            else:
                self._customer(customer_id, learner_id, size, counted)
                counted += size
            learner_id += size
        return self

    # -- the tenant tree, one manager per company ---------------------------

    def _tree(self) -> None:
        now = self.now
        self._company(1, "Bench Partner MSP", "partner", None, "/1/", now - timedelta(days=1500))
        self._manager(1, PARTNER_EMAIL, "Pat Bench")
        self.subs = list(range(2, 2 + SUB_PARTNERS))
        for sub in self.subs:
            self._company(
                sub, f"Bench Sub-partner {sub - 1}", "sub_partner", 1, f"/1/{sub}/", now - timedelta(days=1400)
            )
            self._manager(sub, f"manager@sub{sub}.bench.example", f"Sam Sub {sub - 1}")
        self.customers = list(range(2 + SUB_PARTNERS, 2 + SUB_PARTNERS + CUSTOMERS))
        self.big_id = self.customers[0]
        self.parents = {}
        for n, customer in enumerate(self.customers):
            # one customer in ten directly under the partner, the rest under a sub-partner
            parent = 1 if n % 10 == 9 else self.subs[n % SUB_PARTNERS]
            self.parents[customer] = parent
            path = f"/1/{customer}/" if parent == 1 else f"/1/{parent}/{customer}/"
            name = BIG_CUSTOMER if customer == self.big_id else f"Bench Customer {n:04d}"
            self._company(customer, name, "customer", parent, path, now - timedelta(days=self.rng.randint(600, 1200)))
            email = BIG_MANAGER_EMAIL if customer == self.big_id else f"manager@c{customer}.bench.example"
            self._manager(customer, email, self._name())

    def _company(self, id_: int, name: str, kind: str, parent: int | None, path: str, created: datetime) -> None:
        self.rows["company"].append((id_, name, kind, parent, path, created))

    def _manager(self, company_id: int, email: str, name: str) -> None:
        # The manager of company N has user id N; all share the bench password.
        self.rows["portal_user"].append(
            (company_id, company_id, email, name, "manager", self.password_hash, True,
             self.now - timedelta(days=1000), None)
        )  # fmt: skip

    def _name(self) -> str:
        return f"{self.rng.choice(self.first)} {self.rng.choice(self.last)}"

    def _learner_counts(self) -> dict[int, int]:
        """The big customer's 60,000, and the rest spread unevenly (log-normal)."""
        others = self.customers[1:]
        weights = [self.rng.lognormvariate(0, 1) for _ in others]
        rest, total = LEARNERS - BIG_LEARNERS, sum(weights)
        counts = [math.floor(w / total * rest) for w in weights]
        for i in range(rest - sum(counts)):  # the rounding remainder, one each
            counts[i] += 1
        return {self.big_id: BIG_LEARNERS, **dict(zip(others, counts, strict=True))}

    # -- orders, batches, learners and their seats --------------------------

    def _order(self, company: int, status: str, product: int, quantity: int, requested_at: datetime,
               decided_at: datetime | None = None) -> int:  # fmt: skip
        order_id = len(self.rows["licence_order"]) + 1
        decided_by = {"assigned": self.parents[company], "declined": self.parents[company], "cancelled": company}
        self.rows["licence_order"].append(
            (order_id, company, product, quantity, status,
             f"PO-{order_id:06d}" if order_id % 2 else None, company, requested_at, decided_by.get(status), decided_at,
             "Budget not approved yet; ask again next quarter." if status == "declined" else None)
        )  # fmt: skip
        return order_id

    def _other_orders(self, company: int, count: int) -> None:
        """Requested, declined and cancelled orders, some of the Free trial."""
        rng, now = self.rng, self.now
        for _ in range(count):
            status = rng.choices(("requested", "declined", "cancelled"), (5, 3, 2))[0]
            product = self.trial if rng.random() < 0.1 else self.premium
            if status == "requested":
                self._order(company, status, product, rng.randint(5, 500), now - timedelta(days=90 * rng.random()))
            else:
                asked = now - timedelta(days=540 * rng.random())
                self._order(company, status, product, rng.randint(5, 500), asked,
                            min(now, asked + timedelta(days=5 * rng.random())))  # fmt: skip

    def _batches(self, company: int, starts: list[datetime]) -> list[list]:
        """Assigned orders and their batches (seats filled in later), ending soonest first.
        A batch is [id, order id, starts_at, ends_at, allocated]."""
        batches = []
        for starts_at in sorted(starts):
            requested_at = starts_at - timedelta(days=7 * self.rng.random())
            order_id = self._order(company, "assigned", self.premium, 0, requested_at, starts_at)
            self.batch_count += 1
            batches.append([self.batch_count, order_id, starts_at, starts_at + TERM, 0])
        return batches

    def _seat(self, batch: list, user: int, by: int, allocated_at: datetime, starts_at: datetime) -> None:
        batch[4] += 1
        self.rows["allocation"].append(
            (len(self.rows["allocation"]) + 1, batch[0], user, allocated_at, by, starts_at, batch[3], None)
        )

    def _learner(self, user: int, company: int, ends_at: datetime | None) -> None:
        self.rows["portal_user"].append(
            (user, company, f"learner{user}@c{company}.bench.example", self._name(), "learner", None, True,
             self.now - timedelta(days=700), ends_at)
        )  # fmt: skip

    def _customer(self, company: int, first_user: int, size: int, counted: int) -> None:
        rng, now = self.rng, self.now
        batches = self._batches(company, [now - SPREAD * rng.random() for _ in range(BATCHES_PER_CUSTOMER)])
        self._other_orders(company, ORDERS_PER_CUSTOMER - BATCHES_PER_CUSTOMER)
        for user in range(first_user, first_user + size):
            kind, counted = counted % EVERY, counted + 1
            if kind == 0:  # never licensed
                self._learner(user, company, None)
                continue
            first = rng.randrange(len(batches) - 1 if kind == 1 else len(batches))
            a = batches[first]
            given = min(now, a[2] + timedelta(days=7 * rng.random()))
            self._seat(a, user, company, given, given)
            if kind == 1:  # renewed on a later-ending batch: covered from the end of the first seat
                b = batches[rng.randrange(first + 1, len(batches))]
                renewed = max(b[2], min(a[3], now) - timedelta(days=7))
                self._seat(b, user, company, renewed, max(a[3], renewed))
                self._learner(user, company, b[3])
            else:
                self._learner(user, company, a[3])
        self._seats(batches)

    def _big_customer(self, first_user: int) -> None:
        """50,000 learners on a batch that ended 10 days ago, 10,000 on a running
        one (full, so "Select All" picks the next), and a batch assigned yesterday
        with 55,000 seats, none allocated yet."""
        now, company = self.now, self.big_id
        ended, running, fresh = self._batches(
            company, [now - timedelta(days=10) - TERM, now - timedelta(days=150), now - timedelta(days=1)]
        )
        self._other_orders(company, ORDERS_PER_CUSTOMER - 3)
        for user in range(first_user, first_user + BIG_LEARNERS):
            batch = ended if user - first_user < BIG_EXPIRED else running
            given = batch[2] + timedelta(hours=user % 48)
            self._seat(batch, user, company, given, given)
            self._learner(user, company, batch[3])
        self.big_fresh_batch = fresh[0]
        self._seats([ended, running], free=0)
        self._seats([fresh], free=BIG_FREE_SEATS)

    def _seats(self, batches: list[list], free: int | None = None) -> None:
        """Seats = allocated + some unused; the assigned order asked for that many."""
        for batch_id, order_id, starts_at, ends_at, allocated in batches:
            seats = max(1, allocated + (self.rng.randint(0, allocated // 10 + 1) if free is None else free))
            company = self.rows["licence_order"][order_id - 1][1]
            self.rows["licence_batch"].append(
                (batch_id, order_id, company, self.premium, seats, allocated, starts_at, ends_at)
            )
            order = self.rows["licence_order"][order_id - 1]
            self.rows["licence_order"][order_id - 1] = order[:3] + (seats,) + order[4:]


CHECKS = {
    "batch.allocated = its unreleased allocations": """
        SELECT count(*) FROM licence_batch b LEFT JOIN (
            SELECT batch, count(*) AS n FROM allocation WHERE released_at IS NULL GROUP BY batch) a ON a.batch = b.id
        WHERE b.allocated <> coalesce(a.n, 0) OR b.allocated > b.seats""",
    "licence_ends_at = max(allocation.ends_at)": """
        SELECT count(*) FROM portal_user u LEFT JOIN (
            SELECT "user", max(ends_at) AS ends FROM allocation GROUP BY "user") a ON a."user" = u.id
        WHERE u.licence_ends_at IS DISTINCT FROM a.ends""",
    "batches only for assigned orders, seats = quantity": """
        SELECT count(*) FROM licence_batch b JOIN licence_order o ON o.id = b."order"
        WHERE o.status <> 'assigned' OR o.quantity <> b.seats OR o.company <> b.company""",
    "an order's company_path (set by the COPY's trigger) is its company's path": """
        SELECT count(*) FROM licence_order o JOIN company c ON c.id = o.company WHERE o.company_path <> c.path""",
}


async def _drop_secondary(conn: asyncpg.Connection) -> list[str]:
    """Drop the loaded tables' foreign keys and plain indexes; returns the
    statements that re-create them exactly (names and definitions from the
    catalog). Building an index once after the COPY and validating a foreign
    key with one join is several times faster than maintaining them row by row;
    primary keys and unique constraints stay, so ids and e-mails are checked."""
    tables = list(COLUMNS)
    foreign_keys = await conn.fetch(
        "SELECT conrelid::regclass::text AS tab, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid::regclass::text = ANY($1::text[])",
        tables,
    )
    indexes = await conn.fetch(
        "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index "
        "WHERE indrelid::regclass::text = ANY($1::text[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)",
        tables,
    )
    for fk in foreign_keys:
        await conn.execute(f'ALTER TABLE {fk["tab"]} DROP CONSTRAINT "{fk["conname"]}"')
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    return [index["def"] for index in indexes] + [
        f'ALTER TABLE {fk["tab"]} ADD CONSTRAINT "{fk["conname"]}" {fk["def"]}' for fk in foreign_keys
    ]


async def copy_all(url: str, data: Dataset, timings: dict[str, float]) -> None:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        restore = await _drop_secondary(conn)
        timings[f"drop {len(restore)} indexes and foreign keys"] = time.perf_counter() - started
        for table, columns in COLUMNS.items():
            started = time.perf_counter()
            await conn.copy_records_to_table(table, records=data.rows[table], columns=columns)
            # COPY with explicit ids leaves the sequences at 1: move them past the ids used.
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            timings[f"copy {table} ({len(data.rows[table]):,} rows)"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for statement in restore:
            await conn.execute(statement)
        timings[f"re-create {len(restore)} indexes and foreign keys"] = time.perf_counter() - started
        started = time.perf_counter()
        # VACUUM sets the visibility map (index-only scans), ANALYZE the planner's statistics.
        await conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - started
    finally:
        await conn.close()


async def check(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        # Imported here, after use_database(): Piccolo binds its tables to an engine on import.
        from portal.domain.licences.tabs import TALLY_DRIFT_SQL

        checks = {
            **CHECKS,
            "licence_tally (kept by triggers) = counting the users": f"SELECT count(*) FROM ({TALLY_DRIFT_SQL}) AS t",
        }
        return [f"{name}: {bad} rows wrong" for name, sql in checks.items() if (bad := await conn.fetchval(sql))]
    finally:
        await conn.close()


async def generate(url: str, seed: int = 1, docs: bool = False) -> dict[str, float]:
    use_database(url)
    from portal.domain.passwords import hash_password

    timings: dict[str, float] = {}
    began = started = time.perf_counter()
    await recreate_database(url)
    premium, trial = await migrate()
    timings["drop, create, migrate"] = time.perf_counter() - started

    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    data = Dataset(now, premium, trial, hash_password(PASSWORD), seed).build()
    timings["build rows in Python"] = time.perf_counter() - started

    await copy_all(url, data, timings)
    timings["total"] = time.perf_counter() - began

    started = time.perf_counter()
    problems = await check(url)
    timings["consistency checks (not in total)"] = time.perf_counter() - started
    for name, seconds in timings.items():
        print(f"{name:<45} {seconds:7.1f} s")
    if problems:
        raise SystemExit("inconsistent data:\n  " + "\n  ".join(problems))
    if docs:
        from bench.load import write_docs

        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        rows = "\n".join(f"| {name} | {seconds:.1f} s |" for name, seconds in timings.items())
        write_docs("generate", f"Run {stamp}, seed {seed}:\n\n| step | time |\n|---|---|\n{rows}")
    print(f"{BIG_CUSTOMER}: company {data.big_id}, fresh batch {data.big_fresh_batch}; "
          f"sign in as {PARTNER_EMAIL} / {PASSWORD}")  # fmt: skip
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--docs", action="store_true", help="write the timings into docs/benchmarks.md")
    args = parser.parse_args()
    asyncio.run(generate(args.database_url, args.seed, args.docs))


if __name__ == "__main__":
    main()
