"""Automatic renewal at scale, on PostgreSQL (docs/benchmarks.md, "Automatic renewal").

    python -m bench.auto_renewal [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_autorenew]
                                 [--customers 20000] [--workers 2] [--kill] [--no-docs]

20,000 customers (under 20 partners), each with automatic renewal on ("Renew
automatically", 7 days before the end, the same quantity) and one Premium batch
of 12 seats with 5 holders ending 4 to 5 days from now: every batch is due.
Two real arq workers (`portal worker`, their own Redis server) start; the
automatic renewal tick they run at start-up queues the chunk jobs, which both
take. The clock runs until every batch has its renewal; then the workers stop
and each renewal is checked to have happened exactly once: one assigned renewal
order and one claim per batch, one new batch from the old end with 12 seats and
the 5 holders carried over, their licence end moved, one e-mail per manager,
the licence tally consistent.

With --kill, the first worker is killed with SIGKILL as soon as the first
renewals are committed (mid-run: its chunk in flight is rolled back by
PostgreSQL); the other finishes, and the same checks run.

Drops and re-creates the database (its name must contain "bench")."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench import use_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_autorenew"
PARTNERS = 20
SEATS = 12
HOLDERS = 5
TARGET_S = 30.0
ROOT = Path(__file__).resolve().parent.parent


async def build(url: str, customers: int, now: datetime) -> None:
    """The dataset, by COPY with explicit ids."""
    from bench.generate import migrate, recreate_database

    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit("the database name must contain 'bench': it is dropped and made again")
    await recreate_database(url)
    premium, _ = await migrate()
    conn = await asyncpg.connect(url)
    try:
        companies: list[tuple] = []
        users: list[tuple] = []
        orders, batches, allocations, settings = ([] for _ in range(4))
        for p in range(1, PARTNERS + 1):
            companies.append((p, f"Bench Partner {p:02d}", "partner", None, f"/{p}/", now))
            users.append((p, p, f"am.p{p}@bench.example", "Account manager", "manager", now, None))
        user_id = PARTNERS
        allocation_id = 0
        for i in range(customers):
            company = PARTNERS + 1 + i
            partner = 1 + i % PARTNERS
            path = f"/{partner}/{company}/"
            companies.append((company, f"Customer {i:05d}", "customer", partner, path, now))
            # Past the 72-hour reminders, inside the 7 days: due now, all of them.
            end = now + timedelta(days=4, seconds=i % 86_400)
            start = end - timedelta(days=365)
            user_id += 1
            users.append((user_id, company, f"m.c{company}@bench.example", "Manager", "manager", now, None))
            orders.append((i + 1, company, path, premium, SEATS, "assigned", start, start))
            batches.append((i + 1, i + 1, company, premium, SEATS, HOLDERS, start, end))
            settings.append((company, "renew", 7, "same", now))
            for h in range(HOLDERS):
                user_id += 1
                users.append((user_id, company, f"l{h}.c{company}@bench.example", f"Learner {h}", "learner", now, end))
                allocation_id += 1
                allocations.append((allocation_id, i + 1, user_id, start, start, end))
        copies = [
            ("company", companies, ("id", "name", "kind", "parent", "path", "created_at")),
            ("portal_user", users, ("id", "company", "email", "name", "role", "created_at", "licence_ends_at")),
            ("licence_order", orders,
             ("id", "company", "company_path", "product", "quantity", "status", "requested_at", "decided_at")),
            ("licence_batch", batches,
             ("id", "order", "company", "product", "seats", "allocated", "starts_at", "ends_at")),
            ("allocation", allocations, ("id", "batch", "user", "allocated_at", "starts_at", "ends_at")),
            ("auto_renewal", settings, ("company", "mode", "days_before", "quantity", "updated_at")),
        ]  # fmt: skip
        for table, records, columns in copies:
            await conn.copy_records_to_table(table, records=records, columns=columns)
        for table in ("company", "portal_user", "licence_order", "licence_batch", "allocation"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def renewed(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM licence_order WHERE renews_batch IS NOT NULL")
    finally:
        await conn.close()


async def run_workers(url: str, redis_url: str, workers: int, customers: int, kill: bool) -> dict:
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
    env.pop("SMTP_URL", None)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-autorenew-workers-"))
    logs = [(log_dir / f"worker{n}.log").open("w") for n in range(workers)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "portal.cli", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log)
        for log in logs
    ]
    progress: list[tuple[float, int]] = []
    killed_at: tuple[float, int] | None = None
    try:
        while True:
            await asyncio.sleep(0.25)
            done = await renewed(url)
            elapsed = time.perf_counter() - started
            if not progress or done != progress[-1][1]:
                progress.append((elapsed, done))
            if kill and killed_at is None and 0 < done < customers:
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait()
                killed_at = (elapsed, done)
            if done >= customers:
                break
            for n, proc in enumerate(procs):
                if proc.poll() is not None and not (kill and n == 0):
                    raise SystemExit(f"a worker stopped (exit {proc.returncode}); logs in {log_dir}")
            if elapsed > 600:
                raise SystemExit(f"renewals did not finish in 10 minutes ({done} of {customers}); logs in {log_dir}")
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
        for log in logs:
            log.close()
    first = next((t for t, n in progress if n > 0), wall)
    return {"wall_s": wall, "first_s": first, "rate": customers / wall, "killed_at": killed_at}


CHECKS = {
    "renewal orders (assigned, one per batch)": (
        "SELECT count(*) FROM (SELECT renews_batch FROM licence_order WHERE renews_batch IS NOT NULL "
        "AND status = 'assigned' GROUP BY renews_batch HAVING count(*) = 1) AS one"
    ),
    "orders in all (old + renewals)": "SELECT count(*) FROM licence_order",
    "claims (audit entries, one per batch)": (
        "SELECT count(DISTINCT dedupe_key) FROM audit_entry WHERE action = 'batch.auto_renew'"
    ),
    "audit entries in all": "SELECT count(*) FROM audit_entry",
    "new batches from the old end (12 seats, 5 held)": (
        'SELECT count(*) FROM licence_batch nb JOIN licence_order o ON o.id = nb."order" '
        "JOIN licence_batch ob ON ob.id = o.renews_batch "
        f"WHERE nb.starts_at = ob.ends_at AND nb.ends_at = ob.ends_at + interval '12 months' "
        f"AND nb.seats = {SEATS} AND nb.allocated = {HOLDERS}"
    ),
    "batches in all (old + new)": "SELECT count(*) FROM licence_batch",
    "carried-over seats (holders' licence end = the new batch's end)": (
        "SELECT count(*) FROM allocation a JOIN licence_batch nb ON nb.id = a.batch "
        'JOIN portal_user u ON u.id = a."user" WHERE nb.starts_at > now() AND a.starts_at = nb.starts_at '
        "AND u.licence_ends_at = nb.ends_at AND a.released_at IS NULL"
    ),
    "allocations in all": "SELECT count(*) FROM allocation",
    "'renewed automatically' e-mails": "SELECT count(*) FROM outbox_email WHERE kind = 'auto_renewed'",
}


async def check(url: str, customers: int) -> tuple[dict[str, int], list[str]]:
    """Every renewal happened once: the figures, and what disagrees with them."""
    from portal.domain.licences.tabs import TALLY_DRIFT_SQL

    expected = {
        "renewal orders (assigned, one per batch)": customers,
        "orders in all (old + renewals)": 2 * customers,
        "claims (audit entries, one per batch)": customers,
        "audit entries in all": customers,
        "new batches from the old end (12 seats, 5 held)": customers,
        "batches in all (old + new)": 2 * customers,
        "carried-over seats (holders' licence end = the new batch's end)": HOLDERS * customers,
        "allocations in all": 2 * HOLDERS * customers,
        "'renewed automatically' e-mails": customers,
    }
    conn = await asyncpg.connect(url)
    try:
        figures = {name: await conn.fetchval(sql) for name, sql in CHECKS.items()}
        drift = await conn.fetch(TALLY_DRIFT_SQL)
    finally:
        await conn.close()
    problems = [
        f"{name}: {figures[name]:,}, expected {want:,}" for name, want in expected.items() if figures[name] != want
    ]
    problems += [f"licence tally drift: {dict(d)}" for d in drift]
    return figures, problems


async def main_async(url: str, customers: int, workers: int, kill: bool, docs: bool) -> None:
    from bench.billing_renewal import cpu_model
    from tests.redis_server import start_private_redis

    now = datetime.now(UTC).replace(microsecond=0)
    t = time.perf_counter()
    await build(url, customers, now)
    print(f"dataset: {customers:,} batches due for automatic renewal, in {time.perf_counter() - t:.1f} s")
    redis = start_private_redis(Path(tempfile.mkdtemp(prefix="bench-autorenew-redis-")))
    result = await run_workers(url, f"{redis.url}/0", workers, customers, kill)
    killed = ""
    if result["killed_at"]:
        at, done = result["killed_at"]
        killed = f"; worker 1 killed (SIGKILL) at {at:.1f} s with {done:,} renewed"
    print(
        f"renewed: {customers:,} batches with {workers} arq workers in {result['wall_s']:.1f} s from starting "
        f"the workers ({result['rate']:.0f}/s; first renewal at {result['first_s']:.1f} s){killed}"
    )
    figures, problems = await check(url, customers)
    for name, value in figures.items():
        print(f"  {name}: {value:,}")
    print("exactly once: " + ("yes" if not problems else "NO"))
    for problem in problems:
        print(f"  ! {problem}")
    if docs:
        from bench.load import write_docs

        block = "auto_renewal_kill" if kill else "auto_renewal"
        lines = [
            f"Run {now:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), PostgreSQL, "
            f"`python -m bench.auto_renewal{' --kill' if kill else ''}`.",
            "",
            "| what | figure | target |",
            "|---|---|---|",
            f"| {customers:,} batches due the same day, renewed automatically by {workers} arq workers "
            f"(`portal worker`){killed}: renewal order, new batch from the old end, {HOLDERS} holders carried "
            f"over each | {result['wall_s']:.1f} s from starting the workers ({result['rate']:.0f}/s; first "
            f"renewal at {result['first_s']:.1f} s) | ≤ {TARGET_S:.0f} s |",
            f"| each renewed exactly once (orders, claims, batches, seats, e-mails, tally) | "
            f"{'yes' if not problems else 'NO: ' + '; '.join(problems)} | yes |",
        ]
        lines += [f"| {name} | {value:,} | |" for name, value in figures.items()]
        write_docs(block, "\n".join(lines))
    if problems:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill", action="store_true", help="SIGKILL the first worker mid-run")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    use_database(args.database_url)
    os.environ.pop("SMTP_URL", None)
    asyncio.run(main_async(args.database_url, args.customers, args.workers, args.kill, docs=not args.no_docs))


if __name__ == "__main__":
    main()
