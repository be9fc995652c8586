"""Latency of the hot pages on the bench dataset, 8 clients against one web process.

    python -m bench.load --database-url postgresql://postgres@127.0.0.1:5432/portal_bench

Starts `portal serve --no-demo` on a free loopback port (Redis db 10 for the
queue, 11 for sessions), signs in 8 clients as the partner manager, and times:

- the Admin Dashboard, the Companies list and Notifications;
- Requested Orders with two filters (status=requested, product=Premium);
- the Expired Licenses tab of "Bench Big Customer" (50,000 expired of 60,000),
  page 1 (what opens) and its last page (the deepest OFFSET), for information;
  each read by 1 client alone (the page's own time), then by 8 at once;
- "Select All" + "Allocate Licenses" for those 50,000, end to end, 3 times:
  each run is checked in SQL (50,000 seats added, batch.allocated, the users'
  ends) and then undone, so every run, and the next `bench.load`, starts from
  the generated state.

Each page's 8-client throughput is given as a ratio of the ceiling's
(bench/ceiling.py), which runs beside the portal and is read just before and
just after each page: the shared machine's speed drifts within a minute, and a
ratio of two figures taken seconds apart survives that.

The same domain calls are also timed in-process (no HTTP, sessions or
templates), which separates the database's time from the web layer's. Figures
go to stdout and into the results block of docs/benchmarks.md (--no-docs to skip;
--pages-only skips the allocation and the domain figures).

A change to the web layer is best seen side by side with the code before it,
in one run (`compare`):

    git archive main | tar -x -C /tmp/before
    python -m bench.load --database-url … --against /tmp/before
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench import BIG_CUSTOMER, DEFAULT_DATABASE_URL, PARTNER_EMAIL, PASSWORD, use_database

CLIENTS = 8
REQUESTS = 400
WARMUP = 20
READ_TARGET_MS = 50.0
DASHBOARD_RATIO = 0.6  # of the ceiling's throughput, 8 clients, same run
LIST_RATIO = 0.85
ALLOCATE_TARGET_S = 5.0
ALLOCATION_RUNS = 3  # each from the generated state (reset in between)
REDIS_QUEUE = "redis://127.0.0.1:6379/10"
REDIS_SESSIONS = "redis://127.0.0.1:6379/11"  # the portal puts sessions and the limiter on the queue's db + 1
START_TIMEOUT_S = 60
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
CSRF = re.compile(r'name="_csrf_token"\s+value="([^"]+)"|value="([^"]+)"\s+name="_csrf_token"')


@dataclass
class Result:
    name: str
    target: str
    samples: list[float]  # seconds
    errors: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # CPU seconds the serving process used meanwhile
    client_cpu: float = 0.0  # CPU seconds this process (the clients) used meanwhile, for HTTP rows
    ceiling: float = 0.0  # the ceiling's req/s just before and after this one (mean), when read so

    @property
    def rate(self) -> float:
        return len(self.samples) / self.wall

    def row(self) -> str:
        if not self.samples:
            return f"| {self.name} | {self.target} | – | – | – | – | – | – | – | {self.errors} |"
        ms = sorted(s * 1000 for s in self.samples)
        if len(ms) <= ALLOCATION_RUNS:  # a few timed runs: each of them, and their median
            runs = " / ".join(f"{m:,.0f}" for m in ms)
            cpu = f"{self.cpu / len(ms) * 1000:,.0f}" if self.cpu else ""
            return (
                f"| {self.name} | {self.target} | {len(ms)} runs: {runs} ms | {statistics.median(ms):,.0f} "
                f"| | | | {cpu} | | {self.errors} |"
            )
        cut = statistics.quantiles(ms, n=100, method="inclusive")
        return (
            f"| {self.name} | {self.target} | {len(ms)} | {cut[49]:.1f} | {cut[94]:.1f} | {cut[98]:.1f} "
            f"| {len(ms) / self.wall:.0f} | {self.cpu / len(ms) * 1000:.1f} "
            f"| {f'{self.client_cpu / len(ms) * 1000:.1f}' if self.client_cpu else ''} | {self.errors} |"
        )


# "CPU ms/req" is the serving Python process's own CPU time per request (the web
# process for HTTP rows, this process for domain rows), a figure that other load
# on the machine barely changes. One process runs on one core, so it caps
# throughput at 1000 / (CPU ms/req); with 8 clients always waiting, the mean
# latency is 8 / throughput (Little's law). "client CPU" is what the 8 clients
# (httpx, in this process) spent per request on the same two cores.
HEADER = (
    "| measurement | target | requests | p50 ms | p95 ms | p99 ms | req/s | CPU ms/req | client CPU ms/req | errors |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def process_cpu(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one when pid is None)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the dataset ---------------------------------------------------------------


async def bench_ids(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        big = await conn.fetchval("SELECT id FROM company WHERE name = $1", BIG_CUSTOMER)
        if big is None:
            raise SystemExit(f"no {BIG_CUSTOMER!r}: run python -m bench.generate first")
        return {
            "big": big,
            "premium": await conn.fetchval("SELECT id FROM product WHERE code = 'sat-premium'"),
            "partner_manager": await conn.fetchval("SELECT id FROM portal_user WHERE email = $1", PARTNER_EMAIL),
            # the batch assigned yesterday, with the free seats for "Select All"
            "fresh_batch": await conn.fetchval(
                "SELECT id FROM licence_batch WHERE company = $1 ORDER BY starts_at DESC LIMIT 1", big
            ),
        }
    finally:
        await conn.close()


async def reset_big_customer(url: str, ids: dict[str, int]) -> None:
    """Undo an earlier allocation run, so every run starts from the generated
    state: the users given a seat of the fresh batch get back the end of their
    other latest seat, the seats go, the batch is empty again. Set-based."""
    conn = await asyncpg.connect(url)
    try:
        fresh = ids["fresh_batch"]
        if not await conn.fetchval("SELECT allocated FROM licence_batch WHERE id = $1", fresh):
            return
        async with conn.transaction():
            await conn.execute(
                "UPDATE portal_user u SET licence_ends_at = "
                '(SELECT max(ends_at) FROM allocation a WHERE a."user" = u.id AND a.batch <> $1) '
                'WHERE u.id IN (SELECT "user" FROM allocation WHERE batch = $1)',
                fresh,
            )
            await conn.execute("DELETE FROM allocation WHERE batch = $1", fresh)
            await conn.execute("UPDATE licence_batch SET allocated = 0 WHERE id = $1", fresh)
        await conn.execute("VACUUM ANALYZE portal_user, allocation, licence_batch")
    finally:
        await conn.close()


async def verify_allocation(url: str, ids: dict[str, int], expected: int) -> list[str]:
    """After "Allocate Licenses": seats inserted, the batch's count, the users' ends."""
    conn = await asyncpg.connect(url)
    try:
        batch = await conn.fetchrow("SELECT allocated, ends_at FROM licence_batch WHERE id = $1", ids["fresh_batch"])
        seats = await conn.fetchval("SELECT count(*) FROM allocation WHERE batch = $1", ids["fresh_batch"])
        renewed = await conn.fetchval(
            "SELECT count(*) FROM portal_user WHERE company = $1 AND licence_ends_at = $2", ids["big"], batch["ends_at"]
        )
        expired = await conn.fetchval(
            "SELECT count(*) FROM portal_user WHERE company = $1 AND licence_ends_at <= now()", ids["big"]
        )
    finally:
        await conn.close()
    wrong = []
    if seats != expected or batch["allocated"] != expected:
        wrong.append(f"allocations {seats}, batch.allocated {batch['allocated']}, expected {expected}")
    if renewed != expected or expired:
        wrong.append(f"users renewed {renewed}, still expired {expired}")
    return wrong


# -- the web process ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(command: list[str], env: dict[str, str], var_dir: str):
    log = open(Path(var_dir) / "server.log", "ab")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@contextmanager
def ceiling_process(url: str, var_dir: str):
    """bench/ceiling.py under uvicorn as `portal serve` runs it (one process,
    uvloop and httptools when installed, no access log)."""
    port = _free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "bench.ceiling:app_from_env"]
    command = [*uvicorn, "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with _serving(command, env, var_dir) as proc:
        yield f"http://127.0.0.1:{port}", proc


@contextmanager
def web_process(url: str, var_dir: str, checkout: str | None = None):
    """One `portal serve` process of `checkout` (this one by default); its access
    log goes to var_dir/server.log."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_QUEUE,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PORTAL_VAR_DIR": var_dir,
    }
    env.pop("SECRET_KEY", None)  # the server keeps its own, under var_dir
    # The code of this checkout, not whichever one the venv's editable install
    # names (a worktree sharing another checkout's .venv would bench that one).
    checkout = checkout or str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (checkout, os.environ.get("PYTHONPATH", "")) if p)
    portal = Path(sys.executable).with_name("portal")
    with _serving([str(portal), "serve", "--no-demo"], env, var_dir) as proc:
        yield f"http://127.0.0.1:{port}", proc


async def wait_healthy(base: str, proc: subprocess.Popen, var_dir: str, path: str = "/healthz") -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        for _ in range(int(START_TIMEOUT_S / 0.25)):
            if proc.poll() is not None:
                break
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    tail = (Path(var_dir) / "server.log").read_text(errors="replace")[-3000:]
    raise SystemExit(f"web process {proc.pid} not healthy within {START_TIMEOUT_S} s; its log ends:\n{tail}")


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    if not match:
        raise RuntimeError("no _csrf_token input in the page")
    return match.group(1) or match.group(2)


async def forget(redis_url: str, pattern: str) -> None:
    """Delete keys of the bench's own Redis databases: before signing in, the
    limiter's counts (10 sign-ins a minute per address, and an earlier run in the
    same minute would count); after the run, its sessions and its queued
    sign-in jobs, which no worker runs and which name users of the bench
    database only."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        async for key in client.scan_iter(pattern):
            await client.delete(key)
    finally:
        await client.aclose()


async def signed_in_client(base: str, email: str = PARTNER_EMAIL, timeout: float = 120) -> httpx.AsyncClient:
    """A client signed in as `email` (a demo password of the bench dataset's)."""
    client = httpx.AsyncClient(base_url=base, timeout=timeout)
    form = await client.get("/login")
    response = await client.post(
        "/login", data={"email": email, "password": PASSWORD, "_csrf_token": csrf_token(form.text)}
    )
    if response.status_code not in (301, 302, 303) or "/login" in response.headers.get("location", ""):
        await client.aclose()
        raise SystemExit(f"sign-in as {email} failed: HTTP {response.status_code}")
    return client


# -- measuring ------------------------------------------------------------------


async def run_concurrently(
    name: str, target: str, calls: list[Callable[[], Awaitable[bool]]], requests: int = REQUESTS, pid: int | None = None
) -> Result:
    """WARMUP calls, then `requests` calls shared by the callers (one per client,
    each sending its next request as soon as the last one is answered), each
    timed alone; a call returns whether it succeeded."""
    for i in range(WARMUP):
        await calls[i % len(calls)]()
    result, remaining = Result(name, target, []), [requests]

    async def worker(call: Callable[[], Awaitable[bool]]) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            started = time.perf_counter()
            ok = await call()
            result.samples.append(time.perf_counter() - started)
            result.errors += not ok

    started, cpu, own = time.perf_counter(), process_cpu(pid), process_cpu()
    await asyncio.gather(*(worker(call) for call in calls))
    result.wall, result.cpu = time.perf_counter() - started, process_cpu(pid) - cpu
    if pid is not None:
        result.client_cpu = process_cpu() - own
    return result


def http_get(client: httpx.AsyncClient, path: str) -> Callable[[], Awaitable[bool]]:
    async def call() -> bool:
        return (await client.get(path)).status_code == 200

    return call


def read_pages(ids: dict[str, int]) -> list[tuple[str, str, str]]:
    """(name, target, path) of each page read."""
    orders = f"/licences/orders?status=requested&product={ids['premium']}"
    expired = f"/companies/{ids['big']}/licences?tab=expired"
    list_target = f"≥ {LIST_RATIO}× ceiling, p95 ≤ {READ_TARGET_MS:.0f} ms"
    return [
        ("HTTP Admin Dashboard", f"≥ {DASHBOARD_RATIO}× ceiling, p95 ≤ {READ_TARGET_MS:.0f} ms", "/dashboard"),
        ("HTTP Companies list", f"≥ {LIST_RATIO}× ceiling", "/companies"),
        ("HTTP Notifications", f"≥ {LIST_RATIO}× ceiling", "/notifications"),
        ("HTTP Requested Orders, status + product", list_target, orders),
        ("HTTP Expired Licenses tab, page 1", list_target, expired),
        ("HTTP Expired Licenses tab, last page", "– (info)", f"{expired}&page={-(-50_000 // 25)}"),
    ]


async def web_reads(
    clients: list[httpx.AsyncClient], ids: dict[str, int], pid: int, ceiling: Callable[[], Awaitable[Result]]
) -> list[Result]:
    """Each page by 1 client alone (its own time), then by 8 at once (the
    target), that one between two reads of the ceiling."""
    results = []
    before = await ceiling()
    for name, target, path in read_pages(ids):
        probe = await clients[0].get(path)
        if probe.status_code != 200:
            print(f"{path}: HTTP {probe.status_code}, skipped")
            results.append(Result(f"{name} (HTTP {probe.status_code})", target, [], errors=1))
            continue
        alone = await run_concurrently(
            f"{name}, 1 client", "– (info)", [http_get(clients[0], path)], REQUESTS // 4, pid
        )
        together = await run_concurrently(
            f"{name}, {CLIENTS} clients", target, [http_get(c, path) for c in clients], REQUESTS, pid
        )
        after = await ceiling()
        together.ceiling = statistics.mean((before.rate, after.rate))
        before = after
        results += [alone, together]
        print(alone.row() + "\n" + together.row() + f" ({together.rate / together.ceiling:.2f}× ceiling)")
    return results


async def ceiling_reads(url: str, var_dir: str) -> Result:
    """The bare page (bench/ceiling.py) with 8 clients, started for this read alone."""
    async with ceiling_reader(url, var_dir) as read:
        return await read()


@asynccontextmanager
async def ceiling_reader(url: str, var_dir: str) -> AsyncIterator[Callable[[], Awaitable[Result]]]:
    """The ceiling's process kept running: each call reads the bare page with 8
    clients, each reading pages at a different depth of the 1M learners."""
    with ceiling_process(url, var_dir) as (base, proc):
        await wait_healthy(base, proc, var_dir, "/learners")
        clients = [httpx.AsyncClient(base_url=base, timeout=120) for _ in range(CLIENTS)]
        calls = [http_get(c, f"/learners?after={i * 100_000}") for i, c in enumerate(clients)]

        async def read() -> Result:
            return await run_concurrently(f"HTTP ceiling page, {CLIENTS} clients", "–", calls, REQUESTS, proc.pid)

        try:
            yield read
        finally:
            for client in clients:
                await client.aclose()


def ratios(results: list[Result], ceilings: list[Result]) -> str:
    """Each page's throughput with 8 clients over the ceiling's, in the same run:
    the ceiling read just before and after that page when it was (Result.ceiling),
    else the mean of `ceilings`."""
    ceiling = statistics.mean(c.rate for c in ceilings)
    lines = [
        f"Ceiling (bare Litestar + Jinja + asyncpg, 50 of 1,000,000 rows): {ceiling:.0f} req/s with {CLIENTS} clients "
        f"(reads: {', '.join(f'{c.rate:.0f}' for c in ceilings)}); each page is compared with "
        + ("the reads just before and after it." if any(r.ceiling for r in results) else "their mean."),
        "",
        "| page, 8 clients | req/s | ceiling req/s | × ceiling | target |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if (
            r.name.startswith("HTTP")
            and r.name.endswith(f"{CLIENTS} clients")
            and r.samples
            and "ceiling" not in r.name
        ):
            near = r.ceiling or ceiling
            lines.append(
                f"| {r.name.removesuffix(f', {CLIENTS} clients')} | {r.rate:.0f} | {near:.0f} | {r.rate / near:.2f} "
                f"| {r.target} |"
            )
    return "\n".join(lines)


async def web_allocate(client: httpx.AsyncClient, ids: dict[str, int], pid: int) -> list[Result]:
    """The user's clicks: "Select All" (the count and the batch to take seats
    from, an htmx fragment), "Allocate Licenses" (POST, then its redirect)."""
    tab = f"/companies/{ids['big']}/licences"
    target = f"≤ {ALLOCATE_TARGET_S:.0f} s"
    await client.get(f"{tab}?tab=expired")  # the page the user is on
    started = time.perf_counter()
    confirm = await client.get(
        f"{tab}/select-all?tab=expired&q=", headers={"HX-Request": "true", "HX-Target": "select-all"}
    )
    counted = time.perf_counter()
    if confirm.status_code != 200:
        return [Result(f"HTTP Select All (HTTP {confirm.status_code})", target, [], errors=1)]
    batch = re.search(r'<option value="(\d+)"', confirm.text)
    form = {"select_all": "expired", "tab": "expired", "q": "", "_csrf_token": csrf_token(confirm.text)}
    if batch:
        form["batch_id"] = batch.group(1)
    cpu = process_cpu(pid)
    posted = await client.post(f"{tab}/allocate", data=form)
    allocated, cpu = time.perf_counter(), process_cpu(pid) - cpu
    page = await client.get(posted.headers["location"]) if posted.is_redirect else posted
    done = time.perf_counter()
    ok = posted.status_code in (200, 302, 303) and page.status_code == 200
    print(f"Select All: HTTP {confirm.status_code}; Allocate: HTTP {posted.status_code} "
          f"→ {posted.headers.get('location', '')}")  # fmt: skip
    return [
        Result("HTTP Select All (count of 50,000)", "–", [counted - started]),
        Result("HTTP Allocate Licenses POST (50,000 users)", target, [allocated - counted], int(not ok), cpu=cpu),
        Result("HTTP Select All + Allocate + next page", target, [done - started], errors=int(not ok)),
    ]


async def web_allocations(url: str, client: httpx.AsyncClient, ids: dict[str, int], pid: int) -> list[Result]:
    """ALLOCATION_RUNS times: the clicks, the check in SQL, the reset."""
    runs: list[Result] = []
    for _ in range(ALLOCATION_RUNS):
        parts = await web_allocate(client, ids, pid)
        if len(parts) == 1:  # "Select All" did not answer: nothing to time
            return parts
        if problems := await verify_allocation(url, ids, 50_000):
            print("allocation check FAILED: " + "; ".join(problems))
            parts[-1].errors += 1
        else:
            print("allocation check: 50,000 seats added, batch.allocated and users' ends match")
        await reset_big_customer(url, ids)
        if not runs:
            runs = parts
            continue
        for total, part in zip(runs, parts, strict=True):
            total.samples += part.samples
            total.errors += part.errors
            total.cpu += part.cpu
    for result in runs:
        print(result.row())
    return runs


async def domain_figures(url: str, ids: dict[str, int]) -> list[Result]:
    """The pages' domain calls in-process, 1 and 8 at once on a pool of 8: the
    database's and Piccolo's time, without HTTP, sessions and templates; then
    the allocation itself, ALLOCATION_RUNS times."""
    from portal import db
    from portal.domain.access import load_actor
    from portal.domain.clock import utcnow
    from portal.domain.licences import tabs
    from portal.domain.licences.allocation import Selection, allocate
    from portal.domain.orders import order_list

    await db.open_pool(max_size=CLIENTS)
    try:
        actor = await load_actor(ids["partner_manager"], None)
        premium = order_list.ORDER_FILTERS.values(status="requested", product=ids["premium"])

        async def orders_page() -> bool:
            await order_list.list_orders(actor, premium, None, b"bench")
            await order_list.filter_choices(actor, {"status", "product"})
            return True

        async def expired_tab() -> bool:
            await tabs.licence_view(actor, ids["big"], "expired", "", None, utcnow(), b"bench")
            return True

        results = []
        for name, call in [("domain Requested Orders (list + filter choices)", orders_page),
                           ("domain Expired Licenses tab (counts, batches, page 1)", expired_tab)]:  # fmt: skip
            results.append(await run_concurrently(f"{name}, 1 caller", "– (info)", [call], REQUESTS // 4))
            results.append(await run_concurrently(f"{name}, {CLIENTS} callers", "– (info)", [call] * CLIENTS))
        for result in results:
            print(result.row())
        allocation = Result("domain allocate(Select All expired)", f"≤ {ALLOCATE_TARGET_S:.0f} s", [])
        for _ in range(ALLOCATION_RUNS):
            await reset_big_customer(url, ids)
            started, cpu = time.perf_counter(), process_cpu()
            done = await allocate(actor, ids["big"], Selection(select_all_tab="expired"), utcnow())
            allocation.samples.append(time.perf_counter() - started)
            allocation.cpu += process_cpu() - cpu
            allocation.errors += done.renewed != 50_000
        print(allocation.row())
        return [*results, allocation]
    finally:
        await db.close_pool()


# -- the report -----------------------------------------------------------------


def cpu_speed() -> float:
    """Milliseconds a fixed pure-Python loop takes. The bench machine is a shared
    VM whose speed drifts (up to 2× within minutes, idle), and every figure of a
    run moves with it, so each run says how fast the machine was."""
    started, total = time.perf_counter(), 0
    for i in range(3_000_000):
        total += i * i
    return (time.perf_counter() - started) * 1000


async def machine(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version = (await conn.fetchval("SHOW server_version")).split()[0]
        buffers = await conn.fetchval("SHOW shared_buffers")
        work_mem = await conn.fetchval("SHOW work_mem")
    finally:
        await conn.close()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), {mem_kb / 1024 / 1024:.0f} GB RAM, "
        f"PostgreSQL {version} (shared_buffers {buffers}, work_mem {work_mem}), Python {platform.python_version()}; "
        "client, web process and database on the same machine; load average before the run "
        + " / ".join(f"{n:.2f}" for n in os.getloadavg())
    )


def report(results: list[Result], about: str, speed: tuple[float, float]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"Run {stamp}: {about}. {CLIENTS} clients, {REQUESTS} requests per read after {WARMUP} warm-up. "
            f"CPU speed check (`bench.load.cpu_speed`, lower is faster): {speed[0]:.0f} ms before, "
            f"{speed[1]:.0f} ms after.",
            "",
            HEADER,
            *(r.row() for r in results),
        ]
    )


def write_docs(block: str, text: str) -> None:
    """Replace the generated block `block` of docs/benchmarks.md; the prose around it is kept."""
    begin, end = f"<!-- bench:{block}:begin -->", f"<!-- bench:{block}:end -->"
    docs = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if begin not in docs:
        docs += f"\n{begin}\n{end}\n"
    head, rest = docs.split(begin, 1)
    DOCS.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")
    print(f"{block} figures written to {DOCS}")


async def load(url: str, docs: bool = True, pages_only: bool = False) -> list[Result]:
    use_database(url)
    ids = await bench_ids(url)
    await reset_big_customer(url, ids)
    about = await machine(url)
    speed_before = cpu_speed()
    print(f"CPU speed check: {speed_before:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as var_dir:
        pages, ceilings = await web_pages(url, ids, var_dir, allocations=not pages_only)
    results = [*pages, *ceilings]
    await forget(REDIS_QUEUE, "arq:*")
    await forget(REDIS_SESSIONS, "portal_sessions:*")
    if not pages_only:
        results += await domain_figures(url, ids)
        await reset_big_customer(url, ids)
    text = report(results, about, (speed_before, cpu_speed())) + "\n\n" + ratios(pages, ceilings)
    print("\n" + text)
    if docs:
        write_docs("results", text)
    return results


async def web_pages(
    url: str, ids: dict[str, int], var_dir: str, allocations: bool = True
) -> tuple[list[Result], list[Result]]:
    """The pages' results, and the ceiling's reads between them."""
    results: list[Result] = []
    ceilings: list[Result] = []
    async with ceiling_reader(url, var_dir) as read_ceiling:

        async def ceiling() -> Result:
            ceilings.append(await read_ceiling())
            print(ceilings[-1].row())
            return ceilings[-1]

        with web_process(url, var_dir) as (base, proc):
            await wait_healthy(base, proc, var_dir)
            pid = proc.pid
            await forget(REDIS_SESSIONS, "portal:throttle:sign-in:*")
            clients = [await signed_in_client(base) for _ in range(CLIENTS)]
            try:
                print(HEADER)
                results += await web_reads(clients, ids, pid, ceiling)
                if allocations:
                    results += await web_allocations(url, clients[0], ids, pid)
            finally:
                for client in clients:
                    await client.aclose()
    return results, ceilings


COMPARE_HEADER = (
    "| page, 8 clients | ceiling req/s | before req/s | after req/s | before × ceiling | after × ceiling "
    "| after / before | before CPU ms/req | after CPU ms/req |\n|---|---|---|---|---|---|---|---|---|"
)


async def compare(url: str, other: str, rounds: int) -> None:
    """Another checkout's portal (`other`: before a change) and this one's, side
    by side in one run with the ceiling: for each page, `rounds` rounds of the
    three in turn (the two portals' order alternating), REQUESTS // 2 requests
    each with 8 clients. On a machine whose speed drifts, a change shows in the
    two portals' figures taken seconds apart, not in two runs minutes apart."""
    use_database(url)
    ids = await bench_ids(url)
    print(f"load average before: {' / '.join(f'{n:.2f}' for n in os.getloadavg())}")
    print(COMPARE_HEADER)
    with (
        tempfile.TemporaryDirectory(prefix="portal-bench-") as var_before,
        tempfile.TemporaryDirectory(prefix="portal-bench-") as var_after,
        ceiling_process(url, var_after) as (ceiling_base, ceiling_proc),
        web_process(url, var_before, checkout=str(Path(other).resolve())) as (before_base, before_proc),
        web_process(url, var_after) as (after_base, after_proc),
    ):
        await wait_healthy(ceiling_base, ceiling_proc, var_after, "/learners")
        await wait_healthy(before_base, before_proc, var_before)
        await wait_healthy(after_base, after_proc, var_after)
        ceiling_clients = [httpx.AsyncClient(base_url=ceiling_base, timeout=120) for _ in range(CLIENTS)]
        signed_in: dict[str, list[httpx.AsyncClient]] = {}
        for side, base in (("before", before_base), ("after", after_base)):
            await forget(REDIS_SESSIONS, "portal:throttle:sign-in:*")  # 16 sign-ins, 10 a minute allowed
            signed_in[side] = [await signed_in_client(base) for _ in range(CLIENTS)]
        pids = {"ceiling": ceiling_proc.pid, "before": before_proc.pid, "after": after_proc.pid}
        try:
            for name, _, path in read_pages(ids):
                calls = {
                    "ceiling": [http_get(c, f"/learners?after={i * 100_000}") for i, c in enumerate(ceiling_clients)],
                    **{side: [http_get(c, path) for c in clients] for side, clients in signed_in.items()},
                }
                done = {side: Result(side, "", []) for side in calls}
                for turn in range(rounds):
                    for side in ("ceiling", *(("before", "after") if turn % 2 == 0 else ("after", "before"))):
                        part = await run_concurrently(name, "", calls[side], REQUESTS // 2, pids[side])
                        done[side].samples += part.samples
                        done[side].errors += part.errors
                        done[side].wall += part.wall
                        done[side].cpu += part.cpu
                c, b, a = done["ceiling"], done["before"], done["after"]
                errors = f" ({b.errors} / {a.errors} errors)" if b.errors or a.errors else ""
                rates = f"{c.rate:.0f} | {b.rate:.0f} | {a.rate:.0f}"
                ratios = f"{b.rate / c.rate:.2f} | {a.rate / c.rate:.2f} | {a.rate / b.rate:.2f}"
                cpu = f"{b.cpu / len(b.samples) * 1000:.2f} | {a.cpu / len(a.samples) * 1000:.2f}"
                print(f"| {name.removeprefix('HTTP ')}{errors} | {rates} | {ratios} | {cpu} |", flush=True)
        finally:
            for client in [*ceiling_clients, *signed_in.get("before", []), *signed_in.get("after", [])]:
                await client.aclose()
    await forget(REDIS_SESSIONS, "portal_sessions:*")
    print(f"load average after: {' / '.join(f'{n:.2f}' for n in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--pages-only", action="store_true", help="the pages only: no allocation, no domain figures")
    parser.add_argument(
        "--against", metavar="CHECKOUT", help="compare the pages with another checkout's portal, side by side (no docs)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="with --against: rounds per page")
    args = parser.parse_args()
    if args.against:
        asyncio.run(compare(args.database_url, args.against, args.rounds))
    else:
        asyncio.run(load(args.database_url, docs=not args.no_docs, pages_only=args.pages_only))


if __name__ == "__main__":
    main()
