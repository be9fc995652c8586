"""The audit log's keyset pages: page 1 and page 2,000 of a partner's log, timed.

    python -m bench.audit_log --database-url postgresql://postgres@127.0.0.1:5432/portal_bench_audit

Drops and re-creates that database (its name must contain "bench"), migrates it,
COPYs 1 partner, 2,000 customers and 1,000,000 audit entries about them (spread
over two years, several sharing each instant), then times `audit.list_entries` for
the first page and for the page 2,000 pages in (its cursor taken from the row
there), and, for contrast, the same rows read with OFFSET 49,975 and a full
count of the log. Prints the median of 20 runs of each (3 of the full count), in milliseconds. The
count shown beside the pager (up to 10,000) is part of every page's time.
--no-load times a database loaded before."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import use_database
from bench.generate import recreate_database

CUSTOMERS = 2_000
ENTRIES = 1_000_000
RUNS = 20
DEPTH = 2_000  # pages in


async def load(url: str) -> None:
    from portal import db

    await db.open_pool(max_size=2)
    try:
        await db.migrate()
    finally:
        await db.close_pool()
    rng = random.Random(1)
    now = datetime(2026, 12, 7, tzinfo=UTC)
    conn = await asyncpg.connect(url)
    try:
        companies = [(1, "Bench Partner", "partner", None, "/1/", now)]
        companies += [(i, f"Customer {i}", "customer", 1, f"/1/{i}/", now) for i in range(2, CUSTOMERS + 2)]
        await conn.copy_records_to_table(
            "company", records=companies, columns=["id", "name", "kind", "parent", "path", "created_at"]
        )
        await conn.execute("SELECT setval('company_id_seq', $1)", CUSTOMERS + 2)
        entries = [
            (
                now - timedelta(seconds=(ENTRIES - n) // 3 * 180),
                rng.randrange(2, CUSTOMERS + 2),
                "order.assign",
                json.dumps({"order": n, "seats": rng.randrange(1, 100)}),
            )
            for n in range(ENTRIES)
        ]
        await conn.copy_records_to_table("audit_entry", records=entries, columns=["at", "company", "action", "detail"])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def measure(url: str) -> dict[str, float]:
    from portal import db
    from portal.domain import audit
    from portal.domain.access import Actor
    from portal.domain.audit.log import keyset
    from portal.tables import AuditEntry

    secret = b"bench"
    actor = Actor(1, "Bench", "b@bench.example", 1, "Bench Partner", "partner", "/1/")
    await db.open_pool(max_size=2)
    try:
        there = await AuditEntry.raw(
            "SELECT id, at FROM audit_entry ORDER BY at DESC, id DESC OFFSET {} LIMIT 1", DEPTH * 25 - 26
        )
        cursor = keyset(secret).encode(there[0], "next")

        async def timed(fn, runs: int = RUNS) -> float:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                await fn()
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times)

        first = await timed(lambda: audit.list_entries(actor, {}, None, secret))
        deep = await timed(lambda: audit.list_entries(actor, {}, cursor, secret))
        page = await audit.list_entries(actor, {}, cursor, secret)
        offset_sql = (
            "SELECT a.id FROM audit_entry AS a JOIN company AS c ON c.id = a.company "
            "WHERE c.path LIKE '/1/%' ORDER BY a.at DESC, a.id DESC LIMIT 25 OFFSET {}"
        )
        offset_ids = [r["id"] for r in await AuditEntry.raw(offset_sql, (DEPTH - 1) * 25)]
        assert offset_ids == [e["id"] for e in page.items], "the cursor's page is the OFFSET's page"
        offset = await timed(lambda: AuditEntry.raw(offset_sql, (DEPTH - 1) * 25))
        count = await timed(lambda: AuditEntry.count().where(AuditEntry.company.path.like("/1/%")), runs=3)
    finally:
        await db.close_pool()
    return {
        "page 1 (rows and the count up to 10,000)": first,
        f"page {DEPTH:,} (cursor, the same)": deep,
        f"page {DEPTH:,} read with OFFSET (rows only)": offset,
        "a full count of the partner's log": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/portal_bench_audit")
    parser.add_argument("--no-load", action="store_true", help="time the database as loaded before")
    args = parser.parse_args()
    use_database(args.database_url)
    if not args.no_load:
        started = time.perf_counter()
        asyncio.run(recreate_database(args.database_url))
        asyncio.run(load(args.database_url))
        print(f"load: {time.perf_counter() - started:.1f} s ({ENTRIES:,} entries, {CUSTOMERS:,} customers)")
    for name, ms in asyncio.run(measure(args.database_url)).items():
        print(f"{name}: {ms:.1f} ms (median of {RUNS})")


if __name__ == "__main__":
    main()
