"""Receivables at scale, on PostgreSQL (docs/benchmarks.md, "Receivables").

    python -m bench.receivables [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_receivables]
                                [--customers 2000] [--invoices 100] [--no-docs]

The main dataset's tree (1 partner, 5 sub-partners, 2,000 customers, one in ten
directly under the partner) with 100 invoices per customer, 200,000 in all:
issued over the last 400 days, due 30 days later; 70 % paid, 25 % unpaid, 5 %
void, so the unpaid ones spread over every ageing bucket. As the top partner's
manager (every invoice under its wing): the ageing (one GROUP BY), the ageing CSV
as the route streams it, the outstanding total of the Invoices tab, and a page of
the list with its count, each the best of 5 after one warm-up run, with the
ageing's plan. The CSV's sums are checked against a plain SQL sum per bucket.

Drops and re-creates the database (its name must contain "bench")."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import use_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_receivables"
SUBS = 5
RUNS = 5


async def build(url: str, customers: int, per_customer: int, now: datetime) -> int:
    """The dataset, by COPY with explicit ids; returns the partner manager's user id."""
    from bench.generate import migrate, recreate_database

    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit("the database name must contain 'bench': it is dropped and made again")
    await recreate_database(url)
    await migrate()
    rng = random.Random(7)
    companies: list[tuple] = [(1, "Bench Partner", "partner", None, "/1/", now)]
    for s in range(SUBS):
        companies.append((2 + s, f"Bench Sub-partner {s}", "sub_partner", 1, f"/1/{2 + s}/", now))
    invoices: list[tuple] = []
    next_number: dict[int, int] = {}
    invoice_id = 0
    for i in range(customers):
        company = 2 + SUBS + i
        seller = 1 if i % 10 == 0 else 2 + i % SUBS
        path = f"/1/{company}/" if seller == 1 else f"/1/{seller}/{company}/"
        companies.append((company, f"Customer {i:05d}", "customer", seller, path, now))
        for _ in range(per_customer):
            invoice_id += 1
            number = next_number[seller] = next_number.get(seller, 0) + 1
            issued = now - timedelta(days=rng.uniform(0, 400))
            roll = rng.random()
            status = "paid" if roll < 0.70 else "issued" if roll < 0.95 else "void"
            subtotal = rng.randrange(5_000, 2_000_000)
            tax = subtotal * 825 // 10_000
            invoices.append(
                (invoice_id, seller, company, path, number, status, "renewal", "USD", subtotal, 825, tax,
                 subtotal + tax, issued, issued, issued + timedelta(days=30),
                 issued + timedelta(days=rng.uniform(0, 40)) if status == "paid" else None)
            )  # fmt: skip
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "company", records=companies, columns=("id", "name", "kind", "parent", "path", "created_at")
        )
        manager = await conn.fetchval(
            "INSERT INTO portal_user (company, email, name, role, created_at) "
            "VALUES (1, 'bench-partner@bench.example', 'Bench Partner', 'manager', $1) RETURNING id",
            now,
        )
        await conn.copy_records_to_table(
            "invoice",
            records=invoices,
            columns=("id", "partner", "company", "company_path", "number", "status", "kind", "currency",
                     "subtotal_cents", "tax_rate_bp", "tax_cents", "total_cents", "created_at", "issued_at",
                     "due_at", "paid_at"),
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO billing_profile (company, next_invoice_number) VALUES ($1, $2)",
            [(seller, n + 1) for seller, n in next_number.items()],
        )
        for table in ("company", "invoice"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("VACUUM ANALYZE")
        return manager
    finally:
        await conn.close()


async def best_of(fn) -> tuple[float, object]:
    result = await fn()  # warm-up: prepared statements, caches
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000, result


async def measure(url: str, manager: int, now: datetime) -> tuple[list[tuple[str, float, str]], list[str], str]:
    from portal import db
    from portal.domain.access import load_actor
    from portal.domain.billing import invoices, receivables
    from portal.web.billing.export import ageing_csv

    await db.open_pool(max_size=2)
    try:
        actor = await load_actor(manager, None)
        assert actor is not None

        async def csv_all() -> int:
            return sum([len(chunk) async for chunk in ageing_csv(actor, {}, now)])

        results = []
        ms, rows = await best_of(lambda: receivables.ageing(actor, {}, now))
        assert isinstance(rows, list)
        results.append(("ageing, every customer under the wing (one GROUP BY)", ms, f"{len(rows):,} rows"))
        ms, size = await best_of(csv_all)
        results.append(("the ageing CSV as the route streams it", ms, f"{size:,} characters"))
        ms, totals = await best_of(lambda: receivables.outstanding_totals(actor, {}))
        assert isinstance(totals, list)
        results.append(("outstanding total of the Invoices tab (unfiltered)", ms, f"{totals[0]['invoices']:,} unpaid"))
        some = rows[len(rows) // 2]["company"]
        ms, _ = await best_of(lambda: receivables.ageing(actor, {"customer": some}, now))
        results.append(("ageing of one customer (filter)", ms, "1 row"))
        ms, page = await best_of(lambda: invoices.list_invoices(actor, {}, None, b"bench"))
        results.append(("first page of the Invoices tab and its count (as before)", ms, f"{page.total:,} invoices"))

        problems = await check(url, rows, now)
        plan_conn = await asyncpg.connect(url)
        try:
            sql = str(receivables.ageing_query(actor, {}, now))
            plan = await plan_conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) {sql}")
        finally:
            await plan_conn.close()
        return results, problems, "\n".join(r[0] for r in plan)
    finally:
        await db.close_pool()


async def check(url: str, rows: list[dict], now: datetime) -> list[str]:
    """The ageing's sums equal plain SQL sums by days overdue (PostgreSQL's own date arithmetic)."""
    conn = await asyncpg.connect(url)
    try:
        days = "($1::timestamptz AT TIME ZONE 'UTC')::date - (due_at AT TIME ZONE 'UTC')::date"
        expected = await conn.fetch(
            f"SELECT company, sum(total_cents) FILTER (WHERE {days} < 0) AS current, "
            f"sum(total_cents) FILTER (WHERE {days} BETWEEN 0 AND 30) AS days_0_30, "
            f"sum(total_cents) FILTER (WHERE {days} BETWEEN 31 AND 60) AS days_31_60, "
            f"sum(total_cents) FILTER (WHERE {days} BETWEEN 61 AND 90) AS days_61_90, "
            f"sum(total_cents) FILTER (WHERE {days} > 90) AS days_over_90, sum(total_cents) AS total_cents "
            "FROM invoice WHERE status = 'issued' GROUP BY company",
            now,
        )
    finally:
        await conn.close()
    want = {r["company"]: {k: int(v or 0) for k, v in dict(r).items() if k != "company"} for r in expected}
    got = {r["company"]: {k: r[k] for k in want.get(r["company"], {})} for r in rows}
    return [f"customer {c}: {got.get(c)} != {w}" for c, w in want.items() if got.get(c) != w]


async def main_async(url: str, customers: int, per_customer: int, docs: bool) -> None:
    from bench.billing_renewal import cpu_model

    use_database(url)  # before anything imports portal (migrate does)
    now = datetime.now(UTC).replace(microsecond=0)
    t = time.perf_counter()
    manager = await build(url, customers, per_customer, now)
    print(
        f"dataset: {customers:,} customers, {customers * per_customer:,} invoices, in {time.perf_counter() - t:.1f} s"
    )
    use_database(url)
    results, problems, plan = await measure(url, manager, now)
    for what, ms, size in results:
        print(f"  {what}: {ms:.1f} ms ({size})")
    print("ageing = plain SQL sums by days overdue: " + ("yes" if not problems else "NO"))
    for problem in problems[:10]:
        print(f"  ! {problem}")
    print(plan)
    if docs:
        from bench.load import write_docs

        lines = [
            f"Run {now:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), PostgreSQL, "
            f"`python -m bench.receivables`: {customers:,} customers, {customers * per_customer:,} invoices "
            f"(about 25 % unpaid), as the top partner's manager; best of {RUNS} after a warm-up; "
            f"load average {os.getloadavg()[0]:.1f} when it ended (other test suites running).",
            "",
            "| what | time | size |",
            "|---|---|---|",
            *(f"| {what} | {ms:.1f} ms | {size} |" for what, ms, size in results),
            f"| ageing = plain SQL sums by days overdue, every customer | {'yes' if not problems else 'NO'} | |",
            "",
            "The ageing's plan (`EXPLAIN ANALYZE`, timing off):",
            "",
            "```",
            plan,
            "```",
        ]
        write_docs("receivables", "\n".join(lines))
    if problems:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--invoices", type=int, default=100, help="per customer")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    asyncio.run(main_async(args.database_url, args.customers, args.invoices, docs=not args.no_docs))


if __name__ == "__main__":
    main()
