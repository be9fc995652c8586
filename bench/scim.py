"""10,000 learners created through SCIM as Entra ID creates them (PostgreSQL).

    python -m bench.scim [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_scim] [--users 10000]

Makes a database of its own (dropped and made again: its name must contain
"bench"): a partner, one customer with a manager, an assigned Premium batch of
6,000 seats running, and a SCIM token of that customer; beside it, 99 other
customers of the partner with 500 people each (every tenth customer's by SCIM),
then VACUUM ANALYZE: the statistics of a database in use, not of empty tables. Starts the real app
(`portal serve --no-demo`, with a Redis server of its own, as bench.dashboard
does) and sends `POST /scim/v2/Users` one after another, as Entra ID's
provisioning does: one token, one kept-alive connection, Entra's body (the
enterprise extension, a work e-mail, `active: true`). The time is from the
first request to the last answer.

While it runs, tables are analyzed as autovacuum would (this machine runs PostgreSQL
with autovacuum off; see `_analyze_as_autovacuum_would`).

Checked after, through SCIM and in SQL: every user answered 201 and is listed
(`totalResults`), each has its SCIM record, and seats followed the rule every
new learner gets (a free seat if the company has one): the first 6,000 created
hold a seat of the batch to its end, the others none, and the batch counts
6,000 allocated of 6,000. Target ≤ 60 s.

The machine is shared, so the run also says the CPU each side spent a user:
the web process (/proc), the database backends serving the bench database
(/proc of the pids pg_stat_activity names) and this client (getrusage). On
sequential requests the three take turns, so their sum is about what a user
costs on an idle machine; the rest of the wall time is waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

import bench.load
from bench import use_database
from bench.load import cpu_speed, machine, wait_healthy, web_process
from tests.redis_server import RedisServer

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_scim"
USERS = 10_000
SEATS = 6_000
TARGET_S = 60.0
TOKEN = "scim_bench-only-token-not-secret-0123456789abcdef"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
DOMAIN = "scim-bench.example"
OTHER_CUSTOMERS, OTHER_USERS_EACH = 99, 500


async def build(url: str) -> dict[str, int]:
    from bench.generate import migrate, recreate_database

    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit("the database name must contain 'bench': it is dropped and made again")
    await recreate_database(url)
    premium, _ = await migrate()
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url)
    try:
        partner = await conn.fetchval(
            "INSERT INTO company (name, kind, path, created_at) VALUES ('Bench SCIM MSP', 'partner', '', $1) "
            "RETURNING id",
            now,
        )
        await conn.execute("UPDATE company SET path = '/' || id || '/' WHERE id = $1", partner)
        customer = await conn.fetchval(
            "INSERT INTO company (name, kind, parent, path, created_at) "
            "VALUES ('Bench SCIM Customer', 'customer', $1, '', $2) RETURNING id",
            partner,
            now,
        )
        await conn.execute("UPDATE company SET path = $1 || id || '/' WHERE id = $2", f"/{partner}/", customer)
        manager = await conn.fetchval(
            "INSERT INTO portal_user (company, email, name, role, created_at) "
            "VALUES ($1, 'it@scim-bench.example', 'Bench IT', 'manager', $2) RETURNING id",
            customer,
            now,
        )
        order = await conn.fetchval(
            "INSERT INTO licence_order (company, product, quantity, status, requested_at, decided_at) "
            "VALUES ($1, $2, $3, 'assigned', $4, $4) RETURNING id",
            customer,
            premium,
            SEATS,
            now - timedelta(days=1),
        )
        batch = await conn.fetchval(
            'INSERT INTO licence_batch ("order", company, product, seats, allocated, starts_at, ends_at) '
            "VALUES ($1, $2, $3, $4, 0, $5, $6) RETURNING id",
            order,
            customer,
            premium,
            SEATS,
            now - timedelta(days=1),
            now + timedelta(days=364),
        )
        await conn.execute(
            "INSERT INTO scim_token (company, name, prefix, token_hash, created_by, created_at) "
            "VALUES ($1, 'Entra ID', $2, $3, $4, $5)",
            customer,
            TOKEN[:10],
            hashlib.sha256(TOKEN.encode()).hexdigest(),
            manager,
            now,
        )
        # The partner's other customers and their people, a few provisioned by SCIM too: a
        # production database is never empty when a company starts provisioning, and the
        # planner's statistics are taken from what is there.
        await conn.execute(
            "INSERT INTO company (name, kind, parent, path, created_at) "
            "SELECT 'Other customer ' || n, 'customer', $1, '', $2 FROM generate_series(1, $3) AS n",
            partner,
            now,
            OTHER_CUSTOMERS,
        )
        await conn.execute(
            "UPDATE company SET path = $1 || id || '/' WHERE parent = $2 AND path = ''", f"/{partner}/", partner
        )
        await conn.execute(
            "INSERT INTO portal_user (company, email, name, role, created_at) "
            "SELECT c.id, 'person' || n || '@other' || c.id || '.example', 'Person ' || n, 'learner', $1 "
            "FROM company c CROSS JOIN generate_series(1, $2) AS n WHERE c.name LIKE 'Other customer %'",
            now,
            OTHER_USERS_EACH,
        )
        await conn.execute(
            "INSERT INTO scim_user (portal_user, company, user_name, user_name_key, external_id, attributes) "
            "SELECT u.id, u.company, u.email, lower(u.email), 'ext-' || u.id, '{}' FROM portal_user u "
            "JOIN company c ON c.id = u.company WHERE c.name LIKE 'Other customer %' AND c.id % 10 = 0"
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return {"customer": customer, "batch": batch}


def entra_user(n: int) -> dict:
    """What Entra ID's provisioning POSTs for a new user (its attribute mapping's defaults)."""
    given, family = f"Given{n:05d}", f"Family{n:05d}"
    address = f"user{n:05d}@{DOMAIN}"
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": f"00000000-0000-4000-8000-{n:012d}",
        "userName": address,
        "active": True,
        "displayName": f"{given} {family}",
        "emails": [{"primary": True, "type": "work", "value": address}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "title": "Analyst",
        ENTERPRISE: {"department": "Operations", "employeeNumber": str(n)},
    }


async def provision(base: str, users: int) -> tuple[float, list[str]]:
    """Sequential creates over one connection; the elapsed time and any refusals."""
    wrong: list[str] = []
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/scim+json"}
    # aiohttp: Entra ID's own CPU is not on this machine, and httpx would spend 1.9 ms a
    # request of the two cores the portal runs on (aiohttp 0.2 ms; see Webhooks in docs).
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(
        f"{base}/scim/v2/", connector=connector, timeout=aiohttp.ClientTimeout(total=60), headers=headers
    ) as client:
        started = time.perf_counter()
        for n in range(users):
            async with client.post("Users", data=json.dumps(entra_user(n))) as response:
                if response.status != 201:
                    wrong.append(f"user {n}: HTTP {response.status} {(await response.text())[:200]}")
                    if len(wrong) > 10:
                        break
                await response.read()
            if (n + 1) % 2000 == 0:
                print(f"  {n + 1:,} created, {time.perf_counter() - started:.1f} s")
        elapsed = time.perf_counter() - started
        async with client.get("Users", params={"count": "0"}) as listed:
            total = (await listed.json(content_type=None)).get("totalResults") if listed.status == 200 else None
        if total != users:
            wrong.append(f"SCIM lists {total} users, expected {users}")
        last = f"user{users - 1:05d}@{DOMAIN}"
        async with client.get("Users", params={"filter": f'userName eq "{last}"'}) as found:
            found_total = (await found.json(content_type=None)).get("totalResults") if found.status == 200 else None
        if found_total != 1:
            wrong.append(f"the last user is not found by userName: HTTP {found.status}")
    return elapsed, wrong


async def check(url: str, ids: dict[str, int], users: int) -> list[str]:
    """Seats by the rule a new learner gets: a free seat while the company has one."""
    conn = await asyncpg.connect(url)
    try:
        learners = await conn.fetch(
            "SELECT u.id, u.licence_ends_at, s.id AS scim_id, "
            "(SELECT count(*) FROM allocation a WHERE a.user = u.id AND a.released_at IS NULL) AS seats "
            "FROM portal_user u LEFT JOIN scim_user s ON s.portal_user = u.id "
            "WHERE u.company = $1 AND u.role = 'learner' ORDER BY u.id",
            ids["customer"],
        )
        batch = await conn.fetchrow("SELECT seats, allocated, ends_at FROM licence_batch WHERE id = $1", ids["batch"])
        held = await conn.fetchval("SELECT count(*) FROM allocation WHERE batch = $1", ids["batch"])
    finally:
        await conn.close()
    wrong = []
    if len(learners) != users or any(row["scim_id"] is None for row in learners):
        wrong.append(f"{len(learners)} learners, {sum(r['scim_id'] is None for r in learners)} without a SCIM record")
    seated = min(users, batch["seats"])
    expected = [1] * seated + [0] * (len(learners) - seated)
    if [row["seats"] for row in learners] != expected:
        wrong.append("seats did not go to the first learners created, one each, while free seats lasted")
    if any(row["licence_ends_at"] != batch["ends_at"] for row in learners[:seated]):
        wrong.append("a seated learner's licence does not end with the batch")
    if held != seated or batch["allocated"] != seated:
        wrong.append(f"batch: {held} allocations, allocated {batch['allocated']}, expected {seated}")
    return wrong


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process of this machine has used; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _backend_cpu(url: str) -> dict[int, float]:
    conn = await asyncpg.connect(url)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return {row["pid"]: _cpu_of(row["pid"]) for row in pids}


async def _watch_backends(url: str, seen: dict[int, float]) -> None:
    """Every second, the CPU of each backend so far: the pool replaces a
    connection after 50,000 queries, and a backend gone by the end of the run
    is counted as last seen."""
    while True:
        await asyncio.sleep(1)
        seen.update({pid: cpu for pid, cpu in (await _backend_cpu(url)).items() if cpu})


# PostgreSQL's defaults: autovacuum looks at each database every minute and analyzes a
# table once more than 50 rows + 10 % of it changed since its last analyze.
NAPTIME_S = 60.0
ANALYZE_THRESHOLD, ANALYZE_SCALE = 50, 0.1


async def _analyze_as_autovacuum_would(url: str) -> None:
    """This machine's PostgreSQL runs with autovacuum off, a production one with it
    on: without this the planner keeps the empty tables' statistics for the whole
    run and looks a user up by reading every user of the company."""
    conn = await asyncpg.connect(url)
    try:
        while True:
            await asyncio.sleep(NAPTIME_S)
            due = await conn.fetch(
                "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.n_mod_since_analyze > $1 + $2 * greatest(c.reltuples, 0)",
                ANALYZE_THRESHOLD,
                ANALYZE_SCALE,
            )
            for row in due:
                await conn.execute(f'ANALYZE "{row["relname"]}"')
    finally:
        await conn.close()


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(url: str, users: int) -> None:
    use_database(url)
    started = time.perf_counter()
    ids = await build(url)
    print(f"dataset: 1 customer, {SEATS:,} free seats, a SCIM token, in {time.perf_counter() - started:.1f} s")
    about = await machine(url)
    speed = cpu_speed()
    with tempfile.TemporaryDirectory(prefix="portal-bench-scim-") as var_dir:
        redis = RedisServer(Path(var_dir) / "redis").start()
        bench.load.REDIS_QUEUE = f"{redis.url}/0"  # web_process reads it when called
        try:
            with web_process(url, var_dir) as (base, proc):
                await wait_healthy(base, proc, var_dir)
                web_before, db_before, own_before = _cpu_of(proc.pid), await _backend_cpu(url), _own_cpu()
                db_seen = dict(db_before)
                watching = asyncio.create_task(_watch_backends(url, db_seen))
                analyzing = asyncio.create_task(_analyze_as_autovacuum_would(url))
                try:
                    elapsed, wrong = await provision(base, users)
                finally:
                    watching.cancel()
                    analyzing.cancel()
                web_cpu, own_cpu = _cpu_of(proc.pid) - web_before, _own_cpu() - own_before
                db_seen.update(await _backend_cpu(url))
                db_cpu = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_seen.items())
        finally:
            redis.stop()
    wrong += await check(url, ids, users)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Run {stamp}: {about}; CPU speed check {speed:.0f} ms before, {cpu_speed():.0f} ms after.")
    print(
        f"{users:,} users by SCIM POST, one connection: {elapsed:.1f} s ({elapsed / users * 1000:.1f} ms a user, "
        f"{users / elapsed:.0f} a second); target ≤ {TARGET_S:.0f} s; "
        + ("checked" if not wrong else "CHECK FAILED: " + "; ".join(wrong))
    )
    per_user = 1000 / users
    print(
        f"CPU a user: web process {web_cpu * per_user:.2f} ms, database {db_cpu * per_user:.2f} ms, "
        f"client {own_cpu * per_user:.2f} ms; sum {(web_cpu + db_cpu + own_cpu) * per_user:.2f} ms "
        f"(the checks after the run are included for the client)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--users", type=int, default=USERS)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.users))


if __name__ == "__main__":
    main()
