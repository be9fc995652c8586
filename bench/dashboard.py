"""The Admin Dashboard on the bench dataset (2,000 customers, 1M learners), PostgreSQL.

    python -m bench.dashboard --database-url postgresql://postgres@127.0.0.1:5432/portal_bench

Like bench.load: one `portal serve --no-demo` on a free loopback port, 8 clients
signed in as the partner manager, and times

- the bare ceiling page (bench/ceiling.py) with 8 clients, before and after the
  dashboard's pages, as bench.load does: each page's throughput is also given
  as a ratio of the ceiling's in the same run, which absorbs part of the shared
  machine's drifting speed;
- the whole Admin Dashboard page (customer table sorted by expired users, the
  renewal forecast's two charts, the 30/60/90-day horizons, the batches ending
  in the next 30 days, the wing's tree), 1 client then 8 at once (target with 8:
  ≥ 0.6× the ceiling, p95 ≤ 50 ms); its second page (`after=`), for information;
- the customer table alone as htmx asks it (sorted by free seats, searched);
- in-process, without HTTP or templates: the customer figures (one grouped
  statement) and the forecast (two grouped statements), 1 caller, which is
  the database's time plus Piccolo's (target for the forecast ≤ 50 ms).

Prints a markdown block; append it to docs/benchmarks.md by hand (another
bench writes there too, so this one never rewrites the file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

import bench.load
from bench import DEFAULT_DATABASE_URL, use_database
from bench.load import (
    CLIENTS,
    HEADER,
    REQUESTS,
    WARMUP,
    Result,
    bench_ids,
    ceiling_reads,
    cpu_speed,
    forget,
    http_get,
    machine,
    process_cpu,
    ratios,
    run_concurrently,
    signed_in_client,
    wait_healthy,
    web_process,
)
from tests.redis_server import RedisServer

PAGE_TARGET_MS = 50.0
PIPELINE_TARGET_MS = 200.0  # a page of its own, opened now and then
FORECAST_TARGET_MS = 50.0
DB_CPU_HEADER = (
    "| measurement | web CPU ms/req | PostgreSQL CPU ms/req | client CPU ms/req | all three |\n|---|---|---|---|---|"
)


def database_cpu(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving `database`
    (their process titles name it): with the web process's and the clients',
    what a page costs the machine, whatever else runs on it."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                total += process_cpu(int(proc.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def cpu_row(result: Result, database_seconds: float) -> str:
    n = len(result.samples) or 1
    web, db, client = (x / n * 1000 for x in (result.cpu, database_seconds, result.client_cpu))
    return f"| {result.name} | {web:.1f} | {db:.1f} | {client:.1f} | {web + db + client:.1f} |"


async def web_figures(base: str, pid: int, database: str) -> tuple[list[Result], list[str]]:
    await forget(_sessions(), "portal_rate_limit:*")
    clients = [await signed_in_client(base) for _ in range(CLIENTS)]
    table = {"HX-Request": "true", "HX-Target": "customer-results"}
    results: list[Result] = []
    cpu_rows: list[str] = []
    try:
        page_target = f"≥ {bench.load.DASHBOARD_RATIO}× ceiling, p95 ≤ {PAGE_TARGET_MS:.0f} ms"
        after = _second_page_cursor(await clients[0].get("/dashboard"))
        for name, target, path, headers in [
            ("HTTP Admin Dashboard page", page_target, "/dashboard", {}),
            ("HTTP Admin Dashboard, page 2", "– (info)", f"/dashboard?after={after}", {}),
            ("HTTP customer table, by free seats", "– (info)", "/dashboard?sort=free&dir=asc", table),
            ("HTTP customer table, search 'Customer 1'", "– (info)", "/dashboard?q=Customer%201", table),
        ]:
            probe = await clients[0].get(path, headers=headers)
            if probe.status_code != 200:
                results.append(Result(f"{name} (HTTP {probe.status_code})", target, [], errors=1))
                continue

            def call(client, path=path, headers=headers):
                async def get() -> bool:
                    return (await client.get(path, headers=headers)).status_code == 200

                return get if headers else http_get(client, path)

            # Database CPU is counted across the warm-up too: a slight over-estimate.
            before = database_cpu(database)
            alone = await run_concurrently(f"{name}, 1 client", "– (info)", [call(clients[0])], REQUESTS // 4, pid)
            cpu_rows.append(cpu_row(alone, database_cpu(database) - before))
            before = database_cpu(database)
            together = await run_concurrently(
                f"{name}, {CLIENTS} clients", target, [call(c) for c in clients], REQUESTS, pid
            )
            cpu_rows.append(cpu_row(together, database_cpu(database) - before))
            results += [alone, together]
            print(alone.row() + "\n" + together.row())
    finally:
        for client in clients:
            await client.aclose()
    return results, cpu_rows


async def domain_figures(ids: dict[str, int]) -> list[Result]:
    from portal import db
    from portal.domain import forecast
    from portal.domain.access import load_actor
    from portal.domain.clock import utcnow
    from portal.domain.dashboard import figures, pipeline

    await db.open_pool(max_size=CLIENTS)
    try:
        actor = await load_actor(ids["partner_manager"], None)

        async def customers() -> bool:
            listing = await figures.customer_figures(actor, figures.CustomerQuery(), utcnow())
            return listing.page.total == 2000

        async def the_forecast() -> bool:
            now = utcnow()
            ahead = await forecast.ending_per_week(actor, now)
            behind = await forecast.assigned_per_week(actor, now)
            return len(ahead) == forecast.AHEAD_WEEKS and len(behind) == forecast.BEHIND_WEEKS

        async def the_pipeline() -> bool:
            return len(await pipeline.pipeline(actor, "month", utcnow())) == sum(pipeline.PERIODS["month"])

        async def the_horizons() -> bool:
            return len(await pipeline.horizons(actor, utcnow())) == len(pipeline.HORIZONS)

        async def the_rates() -> bool:
            return (await pipeline.renewal_rates(actor, utcnow())).total > 0

        results = [
            await run_concurrently("domain customer figures (2,000 customers), 1 caller", "– (info)", [customers], 100),
            await run_concurrently(
                "domain renewal pipeline (18 months, money), 1 caller",
                f"p95 ≤ {PIPELINE_TARGET_MS:.0f} ms",
                [the_pipeline],
                50,
            ),
            await run_concurrently(
                "domain next 30/60/90 days (dashboard card), 1 caller",
                f"p95 ≤ {FORECAST_TARGET_MS:.0f} ms",
                [the_horizons],
                100,
            ),
            await run_concurrently(
                "domain renewal rate per customer, page 1, 1 caller",
                f"p95 ≤ {PIPELINE_TARGET_MS:.0f} ms",
                [the_rates],
                50,
            ),
            await run_concurrently(
                "domain forecast (26 weeks ending + 8 assigned), 1 caller",
                f"p95 ≤ {FORECAST_TARGET_MS:.0f} ms",
                [the_forecast],
                100,
            ),
            await run_concurrently(
                f"domain customer figures, {CLIENTS} callers", "– (info)", [customers] * CLIENTS, REQUESTS
            ),
        ]
        for result in results:
            print(result.row())
        return results
    finally:
        await db.close_pool()


def _second_page_cursor(first: httpx.Response) -> str:
    """The id the first page's "Next →" link carries."""
    found = re.search(r"[?&]after=(\d+)", first.text)
    return found.group(1) if found else ""


def _sessions() -> str:
    """The portal keeps sessions and the sign-in limiter on the queue's database + 1."""
    return bench.load.REDIS_QUEUE.rsplit("/", 1)[0] + "/1"


async def _web(url: str, var_dir: str) -> tuple[list[Result], list[str], list[Result]]:
    print(HEADER)
    ceilings = [await ceiling_reads(url, var_dir)]
    print(ceilings[-1].row())
    with web_process(url, var_dir) as (base, proc):
        await wait_healthy(base, proc, var_dir)
        results, cpu_rows = await web_figures(base, proc.pid, url.rsplit("/", 1)[-1])
    ceilings.append(await ceiling_reads(url, var_dir))
    print(ceilings[-1].row())
    return results, cpu_rows, ceilings


async def run(url: str, domain: bool = True) -> str:
    use_database(url)
    ids = await bench_ids(url)
    about = await machine(url)
    before = cpu_speed()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as var_dir:
        # A Redis server of its own: other benches on the machine sign in as the same bench
        # partner on the shared Redis, and their sign-ins would count against this run's limit.
        redis = RedisServer(Path(var_dir) / "redis").start()
        bench.load.REDIS_QUEUE = f"{redis.url}/0"  # web_process reads it when called
        try:
            results, cpu_rows, ceilings = await _web(url, var_dir)
        finally:
            redis.stop()
    pages = list(results)
    if domain:
        results += await domain_figures(ids)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"Run {stamp}: {about}. {CLIENTS} clients, {REQUESTS} requests per page after {WARMUP} warm-up. "
            f"CPU speed check (`bench.load.cpu_speed`, lower is faster): {before:.0f} ms before, "
            f"{cpu_speed():.0f} ms after; load average after: {' / '.join(f'{n:.2f}' for n in os.getloadavg())}.",
            "",
            HEADER,
            ceilings[0].row(),
            *(r.row() for r in results),
            ceilings[1].row(),
            "",
            ratios(pages, ceilings),
            "",
            "CPU per request of the HTTP rows: the web process, the PostgreSQL backends and the clients "
            "(the machine has 2 cores: at 8 clients, mean latency ≈ 8 × all three / 2).",
            "",
            DB_CPU_HEADER,
            *cpu_rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--no-domain", action="store_true", help="the HTTP rows alone (no in-process rows)")
    args = parser.parse_args()
    started = time.perf_counter()
    print("\n" + asyncio.run(run(args.database_url, domain=not args.no_domain)))
    print(f"\n(bench.dashboard took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
