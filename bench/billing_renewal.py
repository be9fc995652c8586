"""Subscription renewals at scale, on PostgreSQL (docs/benchmarks.md, "Subscription renewals").

    python -m bench.billing_renewal [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_billing]
                                    [--customers 20000] [--workers 2] [--no-docs]

20,000 customers (under 20 partners), each with an online Pro subscription
(10 included + 2 extra standard users, 1 read-only) whose term ends within the
next 12 hours, its batch of 12 seats with 5 holders, and a saved test card.
Two real arq workers (`portal worker`, its own Redis server) start; the billing
tick they run at start-up queues the renewal in chunks, which both take. The
clock runs until every subscription is in its next term; then the workers stop
and each renewal is checked to have happened exactly once: one paid renewal
invoice per subscription, numbered without gaps per seller, one succeeded
charge, one new batch from the old end with the 5 holders carried over, one
e-mail per manager, the licence tally consistent.

The 72-hour reminders of the ending batches are in the dataset as sent (they
went three days earlier), so the expiry sweep the workers also run finds
nothing to add. The e-mail workers deliver (capture: no SMTP_URL) the renewal
e-mails meanwhile, as they would in production.

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
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench import use_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_billing"
PARTNERS = 20
HOLDERS = 5
EXTRA_USERS = 2
PRO_USERS = 10
TARGET_S = 60.0
ROOT = Path(__file__).resolve().parent.parent


def _catalogue_rows(partner: int) -> list[tuple]:
    from portal.domain.billing.catalogue import DEFAULT_ITEMS

    return [(partner, i.code, i.kind, i.name, i.price_cents, i.period, i.included_users, True) for i in DEFAULT_ITEMS]


async def build(
    url: str, customers: int, now: datetime, card_tokens: Sequence[str] | None = None
) -> dict[int, datetime]:
    """The dataset, by COPY with explicit ids; returns each subscription's term end by id.
    `card_tokens`: each customer's kept card (bench.stripe_renewal's PaymentMethods at
    localstripe); by default a test-processor token that always pays."""
    from bench.generate import migrate, recreate_database

    await recreate_database(url)
    premium, _ = await migrate()
    conn = await asyncpg.connect(url)
    ends: dict[int, datetime] = {}
    try:
        companies: list[tuple] = []
        users: list[tuple] = []
        orders, batches, allocations, subs, accounts, reminders, profiles, catalogue = ([] for _ in range(8))
        for p in range(1, PARTNERS + 1):
            companies.append((p, f"Bench Partner {p:02d}", "partner", None, f"/{p}/", now))
            profiles.append((p, "USD", 0, False, 1))
            catalogue += _catalogue_rows(p)
        user_id = allocation_id = 0
        for i in range(customers):
            company = PARTNERS + 1 + i
            partner = 1 + i % PARTNERS
            path = f"/{partner}/{company}/"
            companies.append((company, f"Customer {i:05d}", "customer", partner, path, now))
            end = now + timedelta(hours=6, seconds=i % 21_600)  # all due: within the next day
            start = end - timedelta(days=365)
            ends[i + 1] = end
            user_id += 1
            users.append((user_id, company, f"m.c{company}@bench.example", "Manager", "manager", now, None))
            manager = user_id
            orders.append((i + 1, company, path, premium, PRO_USERS + EXTRA_USERS, "assigned", start, start))
            batches.append((i + 1, i + 1, company, premium, PRO_USERS + EXTRA_USERS, HOLDERS, start, end))
            reminders.append(
                ("expiry_reminder", company, f"m.c{company}@bench.example", "ends within 72 hours", "", now,
                 f"expiry_reminder:{i + 1}:{manager}", "sent", i + 1, now - timedelta(days=3))
            )  # fmt: skip
            for h in range(HOLDERS):
                user_id += 1
                users.append((user_id, company, f"l{h}.c{company}@bench.example", f"Learner {h}", "learner", now, end))
                allocation_id += 1
                allocations.append((allocation_id, i + 1, user_id, start, start, end))
            accounts.append((company, "Customer billing", f"billing.c{company}@bench.example",
                             card_tokens[i] if card_tokens else f"tok_test_ok_bench{company:06d}", "Visa", "4242",
                             "2031-12", now))  # fmt: skip
            subs.append((i + 1, company, path, partner, "pro", EXTRA_USERS, 1, "online", "active", True, start, end,
                         i + 1, now))  # fmt: skip
        copies = [
            ("company", companies, ("id", "name", "kind", "parent", "path", "created_at")),
            ("portal_user", users, ("id", "company", "email", "name", "role", "created_at", "licence_ends_at")),
            ("licence_order", orders,
             ("id", "company", "company_path", "product", "quantity", "status", "requested_at", "decided_at")),
            ("licence_batch", batches,
             ("id", "order", "company", "product", "seats", "allocated", "starts_at", "ends_at")),
            ("allocation", allocations, ("id", "batch", "user", "allocated_at", "starts_at", "ends_at")),
            ("outbox_email", reminders, ("kind", "company", "to_email", "subject", "body", "created_at", "dedupe_key",
                                         "status", "batch", "sent_at")),
            ("billing_profile", profiles, ("company", "currency", "tax_rate_bp", "assign_unpaid",
                                           "next_invoice_number")),
            ("catalogue_item", catalogue, ("partner", "code", "kind", "name", "price_cents", "period",
                                           "included_users", "active")),
            ("billing_account", accounts, ("company", "billing_name", "billing_email", "card_token", "card_brand",
                                           "card_last4", "card_expires", "updated_at")),
            ("subscription", subs, ("id", "company", "company_path", "partner", "tier", "extra_users",
                                    "read_only_users", "method", "status", "auto_renew", "term_start", "term_end",
                                    "batch", "created_at")),
        ]  # fmt: skip
        for table, records, columns in copies:
            await conn.copy_records_to_table(table, records=records, columns=columns)
        for table in ("company", "portal_user", "licence_order", "licence_batch", "allocation", "subscription"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return ends


async def renewed(url: str, after: datetime) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM subscription WHERE term_start >= $1", after)
    finally:
        await conn.close()


async def run_workers(
    url: str,
    redis_url: str,
    workers: int,
    customers: int,
    after: datetime,
    extra_env: dict[str, str] | None = None,
    before_stop: Callable[[list[subprocess.Popen]], Awaitable[None]] | None = None,
    timeout_s: float = 600,
) -> dict:
    """`extra_env`: more settings for the workers (the card processor); `before_stop`:
    called with the worker processes once every subscription is renewed, while they
    still run (to read what they cost)."""
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", **(extra_env or {})}
    env.pop("SMTP_URL", None)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-renewal-workers-"))
    logs = [(log_dir / f"worker{n}.log").open("w") for n in range(workers)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "portal.cli", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log)
        for log in logs
    ]
    progress: list[tuple[float, int]] = []
    try:
        while True:
            await asyncio.sleep(0.25)
            done = await renewed(url, after)
            elapsed = time.perf_counter() - started
            if not progress or done != progress[-1][1]:
                progress.append((elapsed, done))
            if done >= customers:
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"a worker stopped (exit {proc.returncode}); logs in {log_dir}")
            if elapsed > timeout_s:
                raise SystemExit(
                    f"renewals did not finish in {timeout_s:.0f} s ({done} of {customers}); logs in {log_dir}"
                )
        wall = time.perf_counter() - started
        if before_stop is not None:
            await before_stop(procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
        for log in logs:
            log.close()
    first = next((t for t, n in progress if n > 0), wall)
    # Each worker logs every job it finished: how the chunks were shared.
    chunks = [Path(log.name).read_text().count("job finished job=renew_chunk") for log in logs]
    return {"wall_s": wall, "first_s": first, "rate": customers / wall, "chunks": chunks}


CHECKS = {
    "subscriptions in their next term, attempts reset": (
        "SELECT count(*) FROM subscription WHERE term_start >= $1 AND renewal_attempts = 0 AND next_charge_at IS NULL"
    ),
    "renewal invoices (paid, one per subscription)": (
        "SELECT count(*) FROM (SELECT subscription FROM invoice WHERE kind = 'renewal' AND status = 'paid' "
        "AND term_start >= $1::timestamptz - interval '1 day' GROUP BY subscription HAVING count(*) = 1) AS one"
    ),
    "invoices in all": "SELECT count(*) FROM invoice WHERE $1::timestamptz IS NOT NULL",
    "charges succeeded (one per invoice, attempt 1)": (
        "SELECT count(DISTINCT invoice) FROM card_charge WHERE status = 'succeeded' AND attempt = 1 "
        "AND $1::timestamptz IS NOT NULL"
    ),
    "charges in all": "SELECT count(*) FROM card_charge WHERE $1::timestamptz IS NOT NULL",
    "new batches from the old end (12 seats, 5 held)": (
        "SELECT count(*) FROM licence_batch b JOIN subscription s ON s.batch = b.id "
        "WHERE b.starts_at = s.term_start AND b.ends_at = s.term_end AND b.seats = 12 AND b.allocated = 5 "
        "AND s.term_start >= $1"
    ),
    "batches in all (old + new)": "SELECT count(*) FROM licence_batch WHERE $1::timestamptz IS NOT NULL",
    "carried-over seats (holders' licence end = the new term's end)": (
        "SELECT count(*) FROM allocation a JOIN subscription s ON s.batch = a.batch "
        'JOIN portal_user u ON u.id = a."user" WHERE a.starts_at = s.term_start AND u.licence_ends_at = s.term_end '
        "AND s.term_start >= $1"
    ),
    "renewal e-mails": "SELECT count(*) FROM outbox_email WHERE kind = 'subscription_renewed' AND created_at >= $1",
}


async def check(url: str, customers: int, after: datetime) -> tuple[dict[str, int], list[str]]:
    """Every renewal happened once: the figures, and what disagrees with them."""
    from portal.domain.licences.tabs import TALLY_DRIFT_SQL

    expected = {
        "subscriptions in their next term, attempts reset": customers,
        "renewal invoices (paid, one per subscription)": customers,
        "invoices in all": customers,
        "charges succeeded (one per invoice, attempt 1)": customers,
        "charges in all": customers,
        "new batches from the old end (12 seats, 5 held)": customers,
        "batches in all (old + new)": 2 * customers,
        "carried-over seats (holders' licence end = the new term's end)": HOLDERS * customers,
        "renewal e-mails": customers,
    }
    conn = await asyncpg.connect(url)
    try:
        figures = {name: await conn.fetchval(sql, after) for name, sql in CHECKS.items()}
        # Gapless per seller: numbers 1..n, next number n + 1.
        gaps = await conn.fetch(
            "SELECT p.company, p.next_invoice_number, count(i.id) AS n, min(i.number) AS lo, max(i.number) AS hi, "
            "count(DISTINCT i.number) AS distinct_numbers FROM billing_profile p "
            "LEFT JOIN invoice i ON i.partner = p.company GROUP BY p.company, p.next_invoice_number "
            "HAVING count(i.id) <> count(DISTINCT i.number) OR min(i.number) <> 1 OR max(i.number) <> count(i.id) "
            "OR p.next_invoice_number <> count(i.id) + 1"
        )
        drift = await conn.fetch(TALLY_DRIFT_SQL)
    finally:
        await conn.close()
    problems = [
        f"{name}: {figures[name]:,}, expected {want:,}" for name, want in expected.items() if figures[name] != want
    ]
    problems += [f"seller {g['company']}: invoice numbers not gapless ({dict(g)})" for g in gaps]
    problems += [f"licence tally drift: {dict(d)}" for d in drift]
    return figures, problems


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


async def main_async(url: str, customers: int, workers: int, docs: bool) -> None:
    from tests.redis_server import start_private_redis

    now = datetime.now(UTC).replace(microsecond=0)
    t = time.perf_counter()
    await build(url, customers, now)
    print(f"dataset: {customers:,} online subscriptions due within the day, in {time.perf_counter() - t:.1f} s")
    redis = start_private_redis(Path(tempfile.mkdtemp(prefix="bench-renewal-redis-")))
    result = await run_workers(url, f"{redis.url}/0", workers, customers, now)
    print(
        f"renewed: {customers:,} subscriptions with {workers} arq workers in {result['wall_s']:.1f} s from starting "
        f"the workers ({result['rate']:.0f}/s; first renewal at {result['first_s']:.1f} s); "
        f"chunk jobs run per worker: {' + '.join(map(str, result['chunks']))}"
    )
    figures, problems = await check(url, customers, now)
    for name, value in figures.items():
        print(f"  {name}: {value:,}")
    print("exactly once: " + ("yes" if not problems else "NO"))
    for problem in problems:
        print(f"  ! {problem}")
    if docs:
        from bench.load import write_docs

        lines = [
            f"Run {now:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), PostgreSQL, "
            f"`python -m bench.billing_renewal`.",
            "",
            "| what | figure | target |",
            "|---|---|---|",
            f"| {customers:,} online subscriptions due the same day, {workers} arq workers (`portal worker`): "
            f"invoice, test charge, new batch, {HOLDERS} seats carried over each | {result['wall_s']:.1f} s from "
            f"starting the workers ({result['rate']:.0f}/s; first renewal at {result['first_s']:.1f} s) "
            f"| ≤ {TARGET_S:.0f} s |",
            f"| chunk jobs (500 each) run per worker | {' + '.join(map(str, result['chunks']))} | both share |",
            f"| each renewed exactly once (invoices, charges, batches, seats, gapless numbers, tally) | "
            f"{'yes' if not problems else 'NO: ' + '; '.join(problems)} | yes |",
        ]
        lines += [f"| {name} | {value:,} | |" for name, value in figures.items()]
        write_docs("billing_renewal", "\n".join(lines))
    if problems:
        raise SystemExit(1)


def run_from_command_line(bench: Callable[..., Awaitable[None]], description: str | None, default_url: str) -> None:
    """The arguments both renewal benchmarks take (this one and bench.stripe_renewal)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=default_url)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    use_database(args.database_url)
    os.environ.pop("SMTP_URL", None)
    asyncio.run(bench(args.database_url, args.customers, args.workers, docs=not args.no_docs))


def main() -> None:
    run_from_command_line(main_async, __doc__, DEFAULT_URL)


if __name__ == "__main__":
    main()
