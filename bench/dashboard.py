"""The Admin Dashboard on the bench dataset (2,000 customers, 1M learners), PostgreSQL.

    python -m bench.dashboard --database-url postgresql://postgres@127.0.0.1:5432/portal_bench

Like bench.load: one `portal serve --no-demo` on a free loopback port, 8 clients
signed in as the partner manager, and times

- the whole Admin Dashboard page (customer table sorted by expired users, the
  renewal forecast's two charts, the wing's tree), 1 client then 8 at once
  (target p95 ≤ 100 ms with 8);
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
import tempfile
import time
from datetime import UTC, datetime

from bench import DEFAULT_DATABASE_URL, use_database
from bench.load import (
    CLIENTS,
    HEADER,
    REDIS_QUEUE,
    REDIS_SESSIONS,
    REQUESTS,
    WARMUP,
    Result,
    bench_ids,
    cpu_speed,
    forget,
    http_get,
    machine,
    run_concurrently,
    signed_in_client,
    wait_healthy,
    web_process,
)

PAGE_TARGET_MS = 100.0
FORECAST_TARGET_MS = 50.0


async def web_figures(base: str, pid: int) -> list[Result]:
    await forget(REDIS_SESSIONS, "portal_rate_limit:*")
    clients = [await signed_in_client(base) for _ in range(CLIENTS)]
    table = {"HX-Request": "true", "HX-Target": "customer-results"}
    results: list[Result] = []
    try:
        for name, target, path, headers in [
            ("HTTP Admin Dashboard page", f"p95 ≤ {PAGE_TARGET_MS:.0f} ms", "/dashboard", {}),
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

            alone = await run_concurrently(f"{name}, 1 client", "– (info)", [call(clients[0])], REQUESTS // 4, pid)
            together = await run_concurrently(
                f"{name}, {CLIENTS} clients", target, [call(c) for c in clients], REQUESTS, pid
            )
            results += [alone, together]
            print(alone.row() + "\n" + together.row())
    finally:
        for client in clients:
            await client.aclose()
    return results


async def domain_figures(ids: dict[str, int]) -> list[Result]:
    from portal import db
    from portal.domain import dashboard, forecast
    from portal.domain.access import load_actor
    from portal.domain.clock import utcnow

    await db.open_pool(max_size=CLIENTS)
    try:
        actor = await load_actor(ids["partner_manager"], None)

        async def customers() -> bool:
            page, _ = await dashboard.customer_figures(actor, dashboard.CustomerQuery(), utcnow())
            return page.total == 2000

        async def the_forecast() -> bool:
            now = utcnow()
            ahead = await forecast.ending_per_week(actor, now)
            behind = await forecast.assigned_per_week(actor, now)
            return len(ahead) == forecast.AHEAD_WEEKS and len(behind) == forecast.BEHIND_WEEKS

        results = [
            await run_concurrently("domain customer figures (2,000 customers), 1 caller", "– (info)", [customers], 100),
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


async def run(url: str) -> str:
    use_database(url)
    ids = await bench_ids(url)
    about = await machine(url)
    before = cpu_speed()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as var_dir, web_process(url, var_dir) as (base, proc):
        await wait_healthy(base, proc, var_dir)
        print(HEADER)
        results += await web_figures(base, proc.pid)
    await forget(REDIS_QUEUE, "arq:*")
    await forget(REDIS_SESSIONS, "portal_sessions:*")
    results += await domain_figures(ids)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"Run {stamp}: {about}. {CLIENTS} clients, {REQUESTS} requests per page after {WARMUP} warm-up. "
            f"CPU speed check (`bench.load.cpu_speed`, lower is faster): {before:.0f} ms before, "
            f"{cpu_speed():.0f} ms after.",
            "",
            HEADER,
            *(r.row() for r in results),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    started = time.perf_counter()
    print("\n" + asyncio.run(run(args.database_url)))
    print(f"\n(bench.dashboard took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
