"""Renewal by CSV on the large dataset (bench/generate.py), for "Bench Big Customer"
(60,000 learners: 50,000 expired, 10,000 running, 55,000 free seats).

    python -m bench.csv_import [--database-url …] [--rows 100000] [--runs 3] [--no-http] [--profile FILE] [--million]

Writes a file shaped like an Excel export (semicolons, a UTF-8 mark, Windows-1252,
a manager's column next to the user's) with renewals, active users, duplicates,
unknown and broken addresses mixed in, then times what a manager waits for:
the upload and preview (store, read, COPY, classify), and "Renew Licences"
(run inside a transaction that is rolled back, so the dataset stays as it was
and the bench can run again).

Then the same file through HTTP, as a manager waits (skipped with --no-http):
the real app (`portal serve`, one process) and one arq worker (`portal
worker`) start on the bench database, with Redis databases of their own; the
big customer's manager signs in, posts the file through the upload form
(multipart, with its CSRF token) and follows the redirect to the preview
("click to preview"); then posts "Renew Licences" and polls the progress
fragment as htmx does (0.5 s after each answer) until it says "Done". Each run
is undone afterwards, in SQL (the seats given, the users' ends, the batch's
count, the import), so every run and the next bench start from the generated
state. Each HTTP run follows an in-process one, printed beside it, so the
two are compared under the same load (other work on the machine moves both).
`--profile FILE` records the web process meanwhile with py-spy (raw format).

`--million` previews a 1,000,000-row file in a process of its own and prints
its peak memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import dataclasses
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx

from bench import BIG_CUSTOMER, BIG_MANAGER_EMAIL, DEFAULT_DATABASE_URL, use_database

if TYPE_CHECKING:
    from portal.domain.imports.limits import ImportFiles


PREVIEW_TARGET_S = 3.0
APPLY_TARGET_S = 5.0
POLL_DELAY_S = 0.5  # the progress fragment's hx-trigger="load delay:500ms"
# Redis databases of this bench's own (queue, and the sessions the portal puts on the next one).
REDIS_QUEUE = "redis://127.0.0.1:6379/12"
REDIS_SESSIONS = "redis://127.0.0.1:6379/13"


class _RolledBack(Exception):
    pass


def _import_files() -> ImportFiles:
    """Where the portal keeps uploads, from its settings, as the app and the worker build it."""
    from portal.services import import_files_of
    from portal.settings import get_settings

    return import_files_of(get_settings())


def _write_file(path: Path, expired: list[str], active: list[str], rows: int, seed: int = 9) -> dict:
    """45% renewals, 5% active, 20% listed twice, 10% not an address, the rest unknown."""
    rng = random.Random(seed)
    renew = expired[: int(rows * 0.45)]
    still = active[: int(rows * 0.05)]
    plan = {"renew": len(renew), "active": len(still), "duplicate": int(rows * 0.20), "invalid": int(rows * 0.10)}
    plan["unknown"] = rows - sum(plan.values())  # the rest: more of them when the customer has fewer users
    kinds = (
        [("renew", e) for e in renew]
        + [("active", e) for e in still]
        + [("duplicate", rng.choice(renew)) for _ in range(plan["duplicate"])]
        + [("unknown", f"someone.{i}@elsewhere.example") for i in range(plan["unknown"])]
        + [("invalid", f"not an address {i}") for i in range(plan["invalid"])]
    )
    # Mixed: whichever copy of an address comes first is renewed, the later ones are "listed twice".
    rng.shuffle(kinds)
    with open(path, "wb") as out:
        out.write(codecs.BOM_UTF8)
        out.write("Name;E-mail;Manager e-mail\r\n".encode("cp1252"))
        for n, (_, address) in enumerate(kinds):
            name = f"Zoë Nº{n}"
            cell = address.upper() if n % 7 == 0 else address
            out.write(f"{name};{cell} ;manager@bench.example\r\n".encode("cp1252"))
    return plan


async def _setup(url: str):
    use_database(url)
    from portal import db
    from portal.domain.access import load_actor
    from portal.tables import Company, User

    await db.open_pool()
    manager = await User.select(User.id).where(User.email == BIG_MANAGER_EMAIL).first()
    company = await Company.select(Company.id).where(Company.name == BIG_CUSTOMER).first()
    assert manager and company, "run python -m bench.generate first"
    actor = await load_actor(manager["id"], None)
    return actor, company["id"]


async def _addresses(company_id: int, now) -> tuple[list[str], list[str]]:
    from portal.tables import User

    rows = await User.raw(
        "SELECT email, licence_ends_at FROM portal_user WHERE company = {} AND role = 'learner' AND active ORDER BY id",
        company_id,
    )
    expired = [r["email"] for r in rows if r["licence_ends_at"] is not None and r["licence_ends_at"] <= now]
    active = [r["email"] for r in rows if r["licence_ends_at"] is not None and r["licence_ends_at"] > now]
    return expired, active


async def run(url: str, rows: int) -> dict:
    actor, company_id = await _setup(url)
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.imports import apply as applying
    from portal.domain.imports import preview, reader
    from portal.domain.imports.addresses import parse_cell
    from portal.tables.imports import CsvImport

    now = utcnow()
    files = _import_files()
    expired, active = await _addresses(company_id, now)
    path = Path(tempfile.mkdtemp(prefix="csv-bench-")) / "from-excel.csv"
    plan = _write_file(path, expired, active, rows)
    figures: dict = {"rows": rows, "bytes": path.stat().st_size, "plan": plan, "path": path, "company_id": company_id}

    started = time.perf_counter()
    layout = reader.inspect(path)
    column = layout.guess or 0
    parsed = sum(
        bool(parse_cell(cells[column] if column < len(cells) else "")[0])
        for _, cells in reader.rows(path, layout.encoding, layout.delimiter, layout.has_header)
    )
    figures["read_and_parse_s"] = time.perf_counter() - started
    figures["addresses"] = parsed

    started = time.perf_counter()
    with open(path, "rb") as source:
        import_id = await preview.receive(actor, company_id, path.name, source, now, files)
    figures["preview_s"] = time.perf_counter() - started
    row = await preview.get_import(actor, company_id, import_id)
    figures["counts"] = row["preview"]["counts"]

    started = time.perf_counter()
    async with db.write_transaction():
        await preview.classify(actor, company_id, import_id, False, now)
    figures["classify_s"] = time.perf_counter() - started

    started = time.perf_counter()
    try:
        async with db.write_transaction():
            result = await applying.apply(actor, company_id, import_id, now, files)
            figures["apply_s"] = time.perf_counter() - started
            figures["renewed"] = result["renewed"]
            raise _RolledBack
    except _RolledBack:
        pass
    await CsvImport.delete().where(CsvImport.id == import_id)
    await db.close_pool()
    await _vacuum(url)
    return figures


@contextmanager
def _app_and_worker(url: str, var_dir: str):
    """`portal serve` (bench.load.web_process's shape, on this bench's Redis
    databases) and one `portal worker` for the "Renew Licences" job."""
    from bench.load import _free_port, _serving

    port = _free_port()
    checkout = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_QUEUE,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PORTAL_VAR_DIR": var_dir,
        "PYTHONPATH": os.pathsep.join(p for p in (checkout, os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("SECRET_KEY", None)  # the server keeps its own, under var_dir
    portal = str(Path(sys.executable).with_name("portal"))
    with _serving([portal, "serve", "--no-demo"], env, var_dir) as web:
        worker_dir = Path(var_dir) / "worker"
        worker_dir.mkdir(exist_ok=True)
        with _serving([portal, "worker"], env, str(worker_dir)) as worker:
            yield f"http://127.0.0.1:{port}", web, worker


async def _undo(url: str, import_id: int, before: int) -> int:
    """Undo an import, applied or not: the seats it gave (allocations after
    `before` of its rows' users), the users' ends as their other seats say, the
    batch's count, the import and its rows."""
    given_sql = 'FROM allocation WHERE id > $1 AND "user" IN (SELECT user_id FROM csv_import_row WHERE csv_import = $2)'
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            given = await conn.fetch(f"SELECT batch, count(*) AS n {given_sql} GROUP BY batch", before, import_id)
            await conn.execute(
                "UPDATE portal_user u SET licence_ends_at = "
                '(SELECT max(ends_at) FROM allocation a WHERE a."user" = u.id AND a.id <= $1) '
                f'WHERE u.id IN (SELECT "user" {given_sql})',
                before,
                import_id,
            )
            await conn.execute(f"DELETE {given_sql}", before, import_id)
            for batch in given:
                await conn.execute(
                    "UPDATE licence_batch SET allocated = allocated - $2 WHERE id = $1", batch["batch"], batch["n"]
                )
            await conn.execute("DELETE FROM csv_import WHERE id = $1", import_id)
        return sum(b["n"] for b in given)
    finally:
        await conn.close()
        await _vacuum(url)


async def _vacuum(url: str) -> None:
    """After a run, undone or rolled back: the tables it wrote without their dead
    rows, so that the next run, in-process or through HTTP, starts as this one did."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE portal_user, allocation, licence_batch, csv_import, csv_import_row")
    finally:
        await conn.close()


async def http_run(client: httpx.AsyncClient, url: str, company_id: int, path: Path, web_pid: int) -> dict:
    """One upload and "Renew Licences" through the pages, timed as the manager waits, then undone."""
    from bench.load import csrf_token, process_cpu

    conn = await asyncpg.connect(url)
    before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM allocation")
    await conn.close()
    page = await client.get(f"/companies/{company_id}/imports")
    figures: dict = {}
    cpu = process_cpu(web_pid)
    started = time.perf_counter()
    with open(path, "rb") as body:
        posted = await client.post(
            f"/companies/{company_id}/imports",
            data={"_csrf_token": csrf_token(page.text)},
            files={"file": (path.name, body, "text/csv")},
        )
    post_s = time.perf_counter() - started
    if posted.status_code not in (302, 303):
        raise SystemExit(f"upload answered HTTP {posted.status_code}: {posted.text[:500]}")
    here = posted.headers["location"]
    import_id = int(here.rsplit("/", 1)[1])
    try:
        preview = await client.get(here)
        figures["preview_s"] = time.perf_counter() - started
        figures["preview_post_s"] = post_s
        figures["preview_cpu_s"] = process_cpu(web_pid) - cpu
        if 'data-testid="renew"' not in preview.text:
            raise SystemExit(f"no Renew Licences on the preview: {preview.text[:2000]}")

        cpu = process_cpu(web_pid)
        started = time.perf_counter()
        renewed = await client.post(f"{here}/renew", data={"_csrf_token": csrf_token(preview.text)})
        if renewed.status_code not in (302, 303):
            raise SystemExit(f"Renew Licences answered HTTP {renewed.status_code}: {renewed.text[:500]}")
        shown = (await client.get(here)).text
        polls = 0
        while 'data-testid="import-result"' not in shown:  # "Done"
            if time.perf_counter() - started > 300:
                raise SystemExit("no Done within 300 s")
            await asyncio.sleep(POLL_DELAY_S)
            shown = (await client.get(f"{here}/progress", headers={"HX-Request": "true"})).text
            polls += 1
        figures["apply_s"] = time.perf_counter() - started
        figures["apply_web_cpu_s"] = process_cpu(web_pid) - cpu
        figures["polls"] = polls
    finally:
        figures["undone"] = await _undo(url, import_id, before)
    return figures


@contextmanager
def _profiled(pid: int, out: str | None):
    """py-spy (`--profile FILE`, py-spy on PATH) records the web process, idle time included, meanwhile."""
    if not out:
        yield
        return
    spy = subprocess.Popen(
        ["py-spy", "record", "-p", str(pid), "--nonblocking", "--idle", "-f", "raw", "-o", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached before the first request
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


async def http_bench(url: str, first: dict, runs: int, profile: str | None = None) -> list[dict]:
    """After `first` (an in-process `run`), each HTTP run right after an in-process one on the same file, so
    that the two see the same load on the machine and the same state of the tables."""
    from bench.load import forget, signed_in_client, wait_healthy

    var_dir = tempfile.mkdtemp(prefix="csv-bench-http-")
    await forget(REDIS_SESSIONS, "*")  # the sign-in limiter's counts of an earlier run
    with _app_and_worker(url, var_dir) as (base, web, _worker):
        await wait_healthy(base, web, var_dir)
        client = await signed_in_client(base, BIG_MANAGER_EMAIL, timeout=300)
        try:
            company_id, path = first["company_id"], first["path"]
            await http_run(client, url, company_id, path, web.pid)  # warm-up: templates, pools, the worker
            paired = []
            with _profiled(web.pid, profile):
                for _ in range(runs):
                    beside = await run(url, first["rows"])
                    figures = await http_run(client, url, company_id, path, web.pid)
                    paired.append({**figures, "in_process": beside})
            return paired
        finally:
            await client.aclose()


async def write_million(url: str) -> Path:
    actor, company_id = await _setup(url)
    from portal import db
    from portal.domain.clock import utcnow

    expired, active = await _addresses(company_id, utcnow())
    await db.close_pool()
    # Padded out to a million with unknown addresses, as _write_file mixes them.
    path = Path(tempfile.mkdtemp(prefix="csv-bench-")) / "million.csv"
    _write_file(path, expired, active, 1_000_000)
    return path


async def million(url: str, path: Path) -> dict:
    """Preview only, in a process that did nothing else: its peak memory is the figure."""
    actor, company_id = await _setup(url)
    # A bigger file than the portal's default accepts, as CSV_MAX_BYTES would allow.
    files = dataclasses.replace(_import_files(), max_bytes=200 * 1024 * 1024)
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.imports import preview
    from portal.tables.imports import CsvImport

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with open(path, "rb") as source:
        import_id = await preview.receive(actor, company_id, path.name, source, utcnow(), files)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row = await preview.get_import(actor, company_id, import_id)
    await CsvImport.delete().where(CsvImport.id == import_id)
    await db.close_pool()
    return {
        "rows": row["rows"],
        "MB": round(path.stat().st_size / 1e6, 1),
        "preview_s": round(seconds, 1),
        "peak_rss_MB": round(peak / 1024),
        "rss_before_preview_MB": round(before / 1024),
    }


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (1/5/15 min, {os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs through HTTP (after one warm-up)")
    parser.add_argument("--no-http", action="store_true", help="in-process figures only")
    parser.add_argument("--profile", help="py-spy raw output of the web process during the HTTP runs")
    parser.add_argument("--million", action="store_true", help="1,000,000-row preview, in a process of its own")
    parser.add_argument("--million-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="csv-bench-var-"))
    if args.million_child:
        print(asyncio.run(million(args.database_url, Path(args.million_child))))
        return
    print(f"load average before: {_load()}")
    figures = asyncio.run(run(args.database_url, args.rows))
    print(f"{figures['rows']:,} rows ({figures['bytes'] / 1e6:.1f} MB): {figures['counts']}")
    print(f"  read and parse alone  {figures['read_and_parse_s']:.2f} s")
    print(f"  preview (upload)      {figures['preview_s']:.2f} s   (of which classify ≈ {figures['classify_s']:.2f} s)")
    print(f"  Renew Licences        {figures['apply_s']:.2f} s   ({figures['renewed']:,} renewed, rolled back)")
    if not args.no_http:
        runs = asyncio.run(http_bench(args.database_url, figures, args.runs, args.profile))
        print(f"  through HTTP (portal serve + portal worker), {len(runs)} runs after a warm-up:")
        for n, r in enumerate(runs, 1):
            print(
                f"    run {n}: click to preview {r['preview_s']:.2f} s (POST {r['preview_post_s']:.2f} s, "
                f"web CPU {r['preview_cpu_s']:.2f} s); Renew Licences to Done {r['apply_s']:.2f} s "
                f"({r['polls']} polls, web CPU {r['apply_web_cpu_s']:.2f} s; {r['undone']:,} seats undone)"
            )
            print(
                f"           just before, in-process: preview {r['in_process']['preview_s']:.2f} s; "
                f"Renew Licences {r['in_process']['apply_s']:.2f} s"
            )
        preview_s = statistics.median(r["preview_s"] for r in runs)
        apply_s = statistics.median(r["apply_s"] for r in runs)
        beside_preview = statistics.median(r["in_process"]["preview_s"] for r in runs)
        beside_apply = statistics.median(r["in_process"]["apply_s"] for r in runs)
        print(f"    in-process beside them, median: preview {beside_preview:.2f} s; renew {beside_apply:.2f} s")
        print(
            f"    median: preview {preview_s:.2f} s (target ≤ {PREVIEW_TARGET_S:.0f} s, "
            f"{'met' if preview_s <= PREVIEW_TARGET_S else 'NOT met'}); "
            f"Renew Licences {apply_s:.2f} s (target ≤ {APPLY_TARGET_S:.0f} s, "
            f"{'met' if apply_s <= APPLY_TARGET_S else 'NOT met'})"
        )
        print(f"  load average after: {_load()}")
    if args.million:
        path = asyncio.run(write_million(args.database_url))
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.csv_import",
                "--database-url",
                args.database_url,
                "--million-child",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print("  1,000,000 rows:", child.stdout.strip())


if __name__ == "__main__":
    main()
