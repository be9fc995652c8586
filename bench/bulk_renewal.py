"""Bulk "Renew selected" at scale, on PostgreSQL (docs/benchmarks.md, "Bulk actions").

    python -m bench.bulk_renewal [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_bulk]
                                 [--customers 2000] [--workers 2] [--kill] [--no-docs]

The dataset of bench/auto_renewal.py (its `build`), under one partner and with
automatic renewal off: each customer has one Premium batch of 12 seats with 5
holders ending 4 to 5 days from now. The partner manager's "Renew selected" for
every customer of the Admin Dashboard (every match of an empty search) is
confirmed (the run and its items written in one transaction), its jobs are
queued, and two real arq workers (`portal worker`, their own Redis server) work
through it, 200 items a transaction, their batches renewed together by
`same_quantity.renew_many` (the rule a single "Renew same quantity" follows).
The clock runs from starting the workers until the run is done; then each
customer is checked to be renewed exactly once, and the run's summary to say
what the database holds.

With --kill, the first worker is killed with SIGKILL as soon as the first
renewals are committed (its item in flight is rolled back by PostgreSQL); the
other finishes, and the same checks run.

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
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench import use_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_bulk"
TARGET_S = 20.0
ROOT = Path(__file__).resolve().parent.parent


async def build(url: str, customers: int, now: datetime) -> None:
    from bench import auto_renewal

    auto_renewal.PARTNERS = 1  # one partner manager renews every customer
    await auto_renewal.build(url, customers, now)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM auto_renewal")  # renewed by the bulk action, not by the tick
    finally:
        await conn.close()


async def confirm(now: datetime) -> tuple[int, str, float]:
    """The partner manager confirms "Renew selected" for every customer matching the empty search."""
    from portal import db
    from portal.domain.access import load_actor
    from portal.domain.bulk import runs
    from portal.domain.bulk.selection import Selection
    from portal.domain.dashboard.figures import CustomerQuery
    from portal.tables.bulk import BulkRun

    await db.open_pool()
    try:
        actor = await load_actor(1, None)
        assert actor is not None
        started = time.perf_counter()
        run = await runs.start_run(actor, Selection("renew", every_match=True, query=CustomerQuery()), "bench", now)
        took = time.perf_counter() - started
        row = await BulkRun.select(BulkRun.said).where(BulkRun.id == run.run_id).first()
        assert row is not None
        return run.run_id, row["said"], took
    finally:
        await db.close_pool()


async def queue_jobs(redis_url: str, run_id: int) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    from portal.jobs.bulk import FAN_OUT, job_id

    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        for slot in range(FAN_OUT):
            await pool.enqueue_job("run_bulk", run_id, slot, _job_id=job_id(run_id, slot))
    finally:
        await pool.aclose()


async def finished(url: str, run_id: int) -> tuple[int, str]:
    conn = await asyncpg.connect(url)
    try:
        n = await conn.fetchval("SELECT count(*) FROM bulk_item WHERE run = $1 AND status <> 'queued'", run_id)
        status = await conn.fetchval("SELECT status FROM bulk_run WHERE id = $1", run_id)
        return n, status
    finally:
        await conn.close()


async def run_workers(url: str, redis_url: str, workers: int, run_id: int, customers: int, kill: bool) -> dict:
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
    env.pop("SMTP_URL", None)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-bulk-workers-"))
    logs = [(log_dir / f"worker{n}.log").open("w") for n in range(workers)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "portal.cli", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log)
        for log in logs
    ]
    first: float | None = None
    killed_at: tuple[float, int] | None = None
    try:
        while True:
            await asyncio.sleep(0.25)
            done, status = await finished(url, run_id)
            elapsed = time.perf_counter() - started
            if first is None and done:
                first = elapsed
            if kill and killed_at is None and 0 < done < customers:
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait()
                killed_at = (elapsed, done)
            if status == "done":
                break
            for n, proc in enumerate(procs):
                if proc.poll() is not None and not (kill and n == 0):
                    raise SystemExit(f"a worker stopped (exit {proc.returncode}); logs in {log_dir}")
            if elapsed > 600:
                raise SystemExit(f"the run did not finish in 10 minutes ({done} of {customers}); logs in {log_dir}")
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
        for log in logs:
            log.close()
    return {"wall_s": wall, "first_s": first or wall, "rate": customers / wall, "killed_at": killed_at}


CHECKS = {
    "items done": "SELECT count(*) FROM bulk_item WHERE status = 'done'",
    "items not done": "SELECT count(*) FROM bulk_item WHERE status <> 'done'",
    "renewal orders (assigned, one per batch)": (
        "SELECT count(*) FROM (SELECT renews_batch FROM licence_order WHERE renews_batch IS NOT NULL "
        "AND status = 'assigned' GROUP BY renews_batch HAVING count(*) = 1) AS one"
    ),
    "orders in all (old + renewals)": "SELECT count(*) FROM licence_order",
    "done items whose batch has its assigned renewal (summary = database)": (
        "SELECT count(*) FROM bulk_item i JOIN licence_order o ON o.renews_batch = i.target "
        "AND o.status = 'assigned' WHERE i.status = 'done'"
    ),
    "new batches from the old end (12 seats, 5 held)": (
        'SELECT count(*) FROM licence_batch nb JOIN licence_order o ON o.id = nb."order" '
        "JOIN licence_batch ob ON ob.id = o.renews_batch "
        "WHERE nb.starts_at = ob.ends_at AND nb.ends_at = ob.ends_at + interval '12 months' "
        "AND nb.seats = 12 AND nb.allocated = 5"
    ),
    "audit entries, one per item (bulk.renew)": "SELECT count(DISTINCT dedupe_key) FROM audit_entry "
    "WHERE action = 'bulk.renew'",
    "audit entries of Assign (order.assign)": "SELECT count(*) FROM audit_entry WHERE action = 'order.assign'",
    "'licenses renewed' e-mails": "SELECT count(*) FROM outbox_email WHERE kind = 'order_assigned'",
}


async def check(url: str, customers: int) -> tuple[dict[str, int], list[str]]:
    from portal.domain.licences.tabs import TALLY_DRIFT_SQL

    expected = {
        "items done": customers,
        "items not done": 0,
        "renewal orders (assigned, one per batch)": customers,
        "orders in all (old + renewals)": 2 * customers,
        "done items whose batch has its assigned renewal (summary = database)": customers,
        "new batches from the old end (12 seats, 5 held)": customers,
        "audit entries, one per item (bulk.renew)": customers,
        "audit entries of Assign (order.assign)": customers,
        "'licenses renewed' e-mails": customers,
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
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    await build(url, customers, now)
    print(f"dataset: {customers:,} customers with a batch ending in 4-5 days, in {time.perf_counter() - t:.1f} s")
    run_id, said, confirm_s = await confirm(now)
    print(f"confirmed: {said} (run and items written in {confirm_s:.2f} s)")
    redis = start_private_redis(Path(tempfile.mkdtemp(prefix="bench-bulk-redis-")))
    redis_url = f"{redis.url}/0"
    await queue_jobs(redis_url, run_id)
    result = await run_workers(url, redis_url, workers, run_id, customers, kill)
    killed = ""
    if result["killed_at"]:
        at, done = result["killed_at"]
        killed = f"; worker 1 killed (SIGKILL) at {at:.1f} s with {done:,} done"
    print(
        f"renewed: {customers:,} customers with {workers} arq workers in {result['wall_s']:.1f} s from starting "
        f"the workers ({result['rate']:.0f}/s; first item at {result['first_s']:.1f} s){killed}"
    )
    figures, problems = await check(url, customers)
    for name, value in figures.items():
        print(f"  {name}: {value:,}")
    print("exactly once: " + ("yes" if not problems else "NO"))
    for problem in problems:
        print(f"  ! {problem}")
    if docs:
        from bench.load import write_docs

        block = "bulk_renewal_kill" if kill else "bulk_renewal"
        lines = [
            f"Run {now:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), PostgreSQL, "
            f"`python -m bench.bulk_renewal{' --kill' if kill else ''}`; load average "
            f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} at the end (a shared machine: other sessions' "
            "test suites on the same cores).",
            "",
            "| what | figure | target |",
            "|---|---|---|",
            f"| confirming “{said}” (every customer matching; the run and its items, one transaction) "
            f"| {confirm_s:.2f} s | |",
            f"| {customers:,} customers renewed by “Renew selected” with {workers} arq workers (`portal worker`)"
            f"{killed}: 200 a transaction through `same_quantity.renew_many` | {result['wall_s']:.1f} s from "
            f"starting the workers ({result['rate']:.0f}/s; first item at {result['first_s']:.1f} s) "
            f"| ≤ {TARGET_S:.0f} s |",
            f"| each customer renewed exactly once, summary = database | "
            f"{'yes' if not problems else 'NO: ' + '; '.join(problems)} | yes |",
        ]
        lines += [f"| {name} | {value:,} | |" for name, value in figures.items()]
        write_docs(block, "\n".join(lines))
    if problems:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill", action="store_true", help="SIGKILL the first worker mid-run")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    use_database(args.database_url)
    os.environ.pop("SMTP_URL", None)
    os.environ.pop("REDIS_URL", None)
    asyncio.run(main_async(args.database_url, args.customers, args.workers, args.kill, docs=not args.no_docs))


if __name__ == "__main__":
    main()
