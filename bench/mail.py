"""E-mail at scale, on PostgreSQL (docs/benchmarks.md, "E-mail").

    python -m bench.mail [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_mail] [--no-docs]

1. The expiry sweep: 10,000 customers (two managers each) with 100,000 batches,
   20,000 of which end within the same hour. One `sweep(now)` queues their
   40,000 72-hour reminders; a second sweep must write nothing.
2. Delivery: 50,000 outbox rows (those 40,000 reminders, rendered from their
   templates as they go, and 10,000 order e-mails) drained by arq workers,
   each its own process (`arq portal.jobs.worker.WorkerSettings`), to an
   aiosmtpd sink in another process on loopback; first one worker, then two.

Drops and re-creates the database (its name must contain "bench"), starts its
own Redis server (tests/redis_server.py) and SMTP sink.

    python -m bench.mail --reminders [--database-url …] [--no-docs]

Reminders the partners set, on the same dataset with its 10,000 customers
spread over five sub-partners of 2,000 each, each sub-partner with reminder
days of its own (and account managers copied under two of them):
3. the sweep over the 20,000 batches due, each on its partner's schedule;
4. the weekly digest of one sub-partner (2,000 customers): its queries and its
   rendering (subject, text and HTML), as the worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench import use_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_mail"
CUSTOMERS = 10_000
MANAGERS_PER_CUSTOMER = 2
BATCHES_PER_CUSTOMER = 10
ENDING_PER_CUSTOMER = 2  # of those, ending within the hour: 20,000 batches
ORDER_EMAILS = 10_000
ROOT = Path(__file__).resolve().parent.parent

SINK = """
import asyncio, signal, sys
from aiosmtpd.controller import Controller

class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait, in every thread
controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
print(Count.n, flush=True)
"""


SUB_PARTNERS = 5
# Each sub-partner's days; all leave the 20,000 batches ending in 71 hours due.
SCHEDULES = ("3", "14,7,3", "30,7,2", "7,1", "21,10,5,3,1")


async def build(url: str, now: datetime, sub_partners: int = 0) -> None:
    from bench.generate import migrate, recreate_database

    await recreate_database(url)
    premium, _ = await migrate()
    conn = await asyncpg.connect(url)
    try:
        companies = [(1, "Bench Mail Partner", "partner", None, "/1/", now)]
        # Sub-partners take the ids after the customers' (customers keep theirs).
        first_sub = CUSTOMERS + 2
        for s in range(sub_partners):
            companies.append((first_sub + s, f"Sub-partner {s}", "sub_partner", 1, f"/1/{first_sub + s}/", now))
        users, orders, batches = [], [], []
        user_id = order_id = 0
        for i in range(CUSTOMERS):
            company = i + 2
            if sub_partners:
                above = first_sub + i % sub_partners
                companies.append((company, f"Customer {i:05d}", "customer", above, f"/1/{above}/{company}/", now))
            else:
                companies.append((company, f"Customer {i:05d}", "customer", 1, f"/1/{company}/", now))
            for m in range(MANAGERS_PER_CUSTOMER):
                user_id += 1
                users.append((user_id, company, f"m{m}.c{company}@bench.example", f"Manager {m}", "manager", now))
            for b in range(BATCHES_PER_CUSTOMER):
                order_id += 1
                if b < ENDING_PER_CUSTOMER:
                    ends = now + timedelta(hours=71, seconds=(i * ENDING_PER_CUSTOMER + b) % 3600)
                else:
                    ends = now + timedelta(days=10 + (i * 7 + b * 31) % 330)
                starts = ends - timedelta(days=365)
                orders.append((order_id, company, f"/1/{company}/", premium, 10, "assigned", starts, starts))
                batches.append((order_id, order_id, company, premium, 10, 0, starts, ends))
        users.append((user_id + 1, 1, "partner@bench.example", "Partner", "manager", now))
        for s in range(sub_partners):
            users.append(
                (user_id + 2 + s, first_sub + s, f"am{s}@bench.example", f"Account manager {s}", "manager", now)
            )
        await conn.copy_records_to_table(
            "company", records=companies, columns=("id", "name", "kind", "parent", "path", "created_at")
        )
        await conn.copy_records_to_table(
            "portal_user", records=users, columns=("id", "company", "email", "name", "role", "created_at")
        )
        await conn.copy_records_to_table(
            "licence_order",
            records=orders,
            columns=("id", "company", "company_path", "product", "quantity", "status", "requested_at", "decided_at"),
        )
        await conn.copy_records_to_table(
            "licence_batch",
            records=batches,
            columns=("id", "order", "company", "product", "seats", "allocated", "starts_at", "ends_at"),
        )
        if sub_partners:
            await conn.executemany(
                "INSERT INTO partner_setting (company, reminder_days, copy_account_managers) VALUES ($1, $2, $3)",
                [(first_sub + s, SCHEDULES[s % len(SCHEDULES)], s < 2) for s in range(sub_partners)],
            )
        for table in ("company", "portal_user", "licence_order", "licence_batch"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def bench_sweep(now: datetime) -> dict:
    from portal import db
    from portal.domain.notifications_sweep import sweep

    await db.open_pool(max_size=2)
    try:
        started = time.perf_counter()
        first = await sweep(now)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = await sweep(now + timedelta(minutes=1))
        second_s = time.perf_counter() - started
    finally:
        await db.close_pool()
    return {"written": sum(first.values()), "first_s": first_s, "again": sum(second.values()), "again_s": second_s}


async def bench_digest(now: datetime) -> dict:
    """One sub-partner's weekly digest, its queries and its rendering, best of three."""
    from portal import db
    from portal.domain.emails import content, digest
    from portal.domain.emails.kinds import get
    from portal.tables import Company

    await db.open_pool(max_size=2)
    try:
        sub = (await Company.raw("SELECT id, name, path FROM company WHERE kind = 'sub_partner' ORDER BY id LIMIT 1"))[
            0
        ]
        customers = (await Company.raw("SELECT count(*) AS n FROM company WHERE parent = {}", sub["id"]))[0]["n"]
        best: tuple[float, float] | None = None
        for _ in range(3):
            started = time.perf_counter()
            data = await digest.digest(sub, now)
            queried = time.perf_counter() - started
            fields = json.loads(content.dumps(data))  # as the worker reads them from the row
            started = time.perf_counter()
            subject, text, html = content.render(
                get("weekly_digest"), fields | {"sender_name": "Bench", "base_url": "http://127.0.0.1:8000"}
            )
            rendered = time.perf_counter() - started
            if best is None or queried + rendered < sum(best):
                best = (queried, rendered)
    finally:
        await db.close_pool()
    assert best is not None
    return {
        "customers": customers,
        "ending": data["counts"]["ending"],
        "query_s": best[0],
        "render_s": best[1],
        "html_kb": len(html) / 1024,
        "subject": subject,
    }


async def reminders_async(url: str, docs: bool) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    t = time.perf_counter()
    await build(url, now, sub_partners=SUB_PARTNERS)
    print(
        f"dataset: {CUSTOMERS:,} customers under {SUB_PARTNERS} sub-partners with their own reminder days, "
        f"{CUSTOMERS * BATCHES_PER_CUSTOMER:,} batches in {time.perf_counter() - t:.1f} s"
    )
    sweep = await bench_sweep(now)
    print(
        f"sweep: {sweep['written']:,} reminders and copies queued in {sweep['first_s']:.2f} s; "
        f"again: {sweep['again']} in {sweep['again_s']:.2f} s"
    )
    dig = await bench_digest(now)
    print(
        f"digest of a sub-partner with {dig['customers']:,} customers ({dig['ending']:,} batches ending): "
        f"queries {dig['query_s']:.2f} s, rendering {dig['render_s']:.2f} s, HTML {dig['html_kb']:.0f} KB"
    )
    if docs:
        from bench.load import write_docs

        lines = [
            f"Run {now:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), PostgreSQL, "
            f"`python -m bench.mail --reminders`; load average {os.getloadavg()[0]:.1f} at the end "
            "(other processes shared the machine).",
            "",
            "| what | figure | target |",
            "|---|---|---|",
            f"| sweep on each partner's days: 20,000 batches due → {sweep['written']:,} reminders and copies | "
            f"{sweep['first_s']:.2f} s | ≤ 10 s |",
            f"| the same sweep again (nothing new) | {sweep['again']} rows, {sweep['again_s']:.2f} s | 0 rows |",
            f"| weekly digest of a sub-partner with {dig['customers']:,} customers ({dig['ending']:,} batches ending): "
            f"queries + rendering | {dig['query_s']:.2f} s + {dig['render_s']:.2f} s "
            f"({dig['html_kb']:.0f} KB of HTML) | ≤ 2 s |",
        ]
        write_docs("reminders", "\n".join(lines))


async def add_order_emails(url: str, now: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        rows = [
            (
                "order_assigned",
                2 + i % CUSTOMERS,
                f"m0.c{2 + i % CUSTOMERS}@bench.example",
                "10 licences are ready to allocate",
                f"10 licences are assigned and ready to allocate.\n\nhttp://127.0.0.1:8000/companies/{2 + i}/licences",
                now,
                now,
                f"bench:{i}",
            )
            for i in range(ORDER_EMAILS)
        ]
        await conn.copy_records_to_table(
            "outbox_email",
            records=rows,
            columns=("kind", "company", "to_email", "subject", "body", "created_at", "next_attempt_at", "dedupe_key"),
        )
    finally:
        await conn.close()


async def reset_outbox(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE outbox_email SET status = 'queued', sent_at = NULL, attempts = 0, claim_token = NULL, "
            "claimed_until = NULL, error = NULL, next_attempt_at = created_at, "
            "body = CASE WHEN batch IS NULL THEN body ELSE '' END, html = NULL"
        )
        await conn.execute("VACUUM ANALYZE outbox_email")
        return await conn.fetchval("SELECT count(*) FROM outbox_email")
    finally:
        await conn.close()


async def queued(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'queued') AS q, count(*) FILTER (WHERE status = 'sent') AS s "
            "FROM outbox_email"
        )
        return row["q"], row["s"]
    finally:
        await conn.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def bench_delivery(url: str, workers: int, redis_url: str, total: int) -> dict:
    await reset_outbox(url)
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert sink.stdout is not None
    sink.stdout.readline()  # "ready"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "SMTP_URL": f"smtp://127.0.0.1:{port}?from=portal@bench.example",
        "LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "arq", "portal.jobs.worker.WorkerSettings"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    started = time.perf_counter()
    first_sent_at = None
    try:
        while True:
            await asyncio.sleep(0.25)
            waiting, sent = await queued(url)
            if sent and first_sent_at is None:
                first_sent_at = (time.perf_counter(), sent)
            if waiting == 0:
                break
            if time.perf_counter() - started > 900:
                raise SystemExit(f"delivery did not finish in 15 minutes ({waiting} waiting)")
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        sink.terminate()
        out, _ = sink.communicate(timeout=30)
    received = int(out.strip().splitlines()[-1])
    steady = (total - first_sent_at[1]) / (time.perf_counter() - first_sent_at[0]) if first_sent_at else 0.0
    return {
        "workers": workers,
        "rows": total,
        "received": received,
        "wall_s": wall,
        "rate": total / wall,
        "steady": steady,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


async def main_async(url: str, docs: bool) -> None:
    from tests.redis_server import start_private_redis

    now = datetime.now(UTC).replace(microsecond=0)
    t = time.perf_counter()
    await build(url, now)
    print(
        f"dataset: {CUSTOMERS:,} customers, {CUSTOMERS * BATCHES_PER_CUSTOMER:,} batches "
        f"in {time.perf_counter() - t:.1f} s"
    )
    sweep = await bench_sweep(now)
    print(
        f"sweep: {sweep['written']:,} reminders queued in {sweep['first_s']:.2f} s; "
        f"again: {sweep['again']} in {sweep['again_s']:.2f} s"
    )
    await add_order_emails(url, now)
    redis = start_private_redis(Path(tempfile.mkdtemp(prefix="bench-mail-redis-")))
    results = []
    total = sweep["written"] + ORDER_EMAILS
    for workers in (1, 2):
        result = await bench_delivery(url, workers, f"{redis.url}/0", total)
        results.append(result)
        print(
            f"delivery, {workers} worker(s): {result['rows']:,} rows, {result['received']:,} received by the sink, "
            f"{result['wall_s']:.1f} s from start = {result['rate']:.0f}/s "
            f"(after the first send: {result['steady']:.0f}/s)"
        )
    if docs:
        from bench.load import write_docs

        lines = [
            f"Run {now:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), PostgreSQL, "
            "`python -m bench.mail`.",
            "",
            "| what | figure | target |",
            "|---|---|---|",
            f"| sweep: 20,000 batches ending within the hour → {sweep['written']:,} reminders | "
            f"{sweep['first_s']:.2f} s | ≤ 10 s |",
            f"| the same sweep again (nothing new) | {sweep['again']} rows, {sweep['again_s']:.2f} s | 0 rows |",
        ]
        for r in results:
            lines.append(
                f"| delivery, {r['workers']} arq worker{'s' if r['workers'] > 1 else ''}: {r['rows']:,} rows → "
                f"{r['received']:,} received | {r['rate']:.0f}/s from start ({r['wall_s']:.1f} s); "
                f"{r['steady']:.0f}/s once sending | {'≥ 300/s' if r['workers'] == 2 else '—'} |"
            )
        write_docs("mail", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--reminders", action="store_true", help="the partners' reminder days and the weekly digest")
    args = parser.parse_args()
    use_database(args.database_url)
    os.environ.pop("SMTP_URL", None)
    run = reminders_async if args.reminders else main_async
    asyncio.run(run(args.database_url, docs=not args.no_docs))


if __name__ == "__main__":
    main()
