"""20,000 webhook events delivered by two workers (PostgreSQL), to a receiver on loopback.

    python -m bench.webhooks [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_webhooks]

Makes a database of its own (dropped and made again: its name must contain
"bench"), one partner with one endpoint taking every event, and 20,000
`order.assigned` events not yet fanned out, as the trigger on audit entries writes
them. A receiver (a bare ASGI app under uvicorn, its own process) answers 204 and
counts each webhook-id. Two worker processes run what the arq cron job runs
(`delivery.fan_out` then `delivery.deliver_due`) until nothing is due; the time is
from their start to the last delivery recorded. Checked after: 20,000 deliveries
delivered, the receiver saw 20,000 distinct ids, none twice. Target ≤ 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench import use_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_webhooks"
EVENTS = 20_000
WORKERS = 2
TARGET_S = 30.0
CHUNK = 500

RECEIVER = """
import collections
ids = collections.Counter()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        body = f"{len(ids)} {sum(ids.values())} {max(ids.values(), default=0)}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    while (await receive()).get("more_body"):
        pass
    ids[dict(scope["headers"]).get(b"webhook-id", b"")] += 1
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def build(url: str, receiver_url: str) -> None:
    from bench.generate import migrate, recreate_database

    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit("the database name must contain 'bench': it is dropped and made again")
    await recreate_database(url)
    await migrate()
    from portal.domain.webhooks.endpoints import new_secret
    from portal.domain.webhooks.events import EVENTS as TYPES
    from portal.domain.webhooks.events import payload

    now = datetime.now(UTC)
    conn = await asyncpg.connect(url)
    try:
        partner = await conn.fetchval(
            "INSERT INTO company (name, kind, path, created_at) "
            "VALUES ('Bench Hooks MSP', 'partner', '', $1) RETURNING id",
            now,
        )
        await conn.execute("UPDATE company SET path = '/' || id || '/' WHERE id = $1", partner)
        customer = await conn.fetchval(
            "INSERT INTO company (name, kind, parent, path, created_at) "
            "VALUES ('Bench Hooks Customer', 'customer', $1, '', $2) RETURNING id",
            partner,
            now,
        )
        await conn.execute("UPDATE company SET path = $1 || id || '/' WHERE id = $2", f"/{partner}/", customer)
        await conn.execute(
            "INSERT INTO webhook_endpoint (partner, url, events, secret, active, created_at) "
            "VALUES ($1, $2, $3, $4, true, $5)",
            partner,
            receiver_url,
            ",".join(TYPES),
            new_secret(),
            now,
        )
        body = payload("order.assigned", now, {"company": {"id": customer, "name": "Bench Hooks Customer"}, "seats": 5})
        rows = [
            (f"msg_{secrets.token_hex(12)}", "order.assigned", customer, body, now, False, f"bench:{i}")
            for i in range(EVENTS)
        ]
        await conn.copy_records_to_table(
            "webhook_event",
            records=rows,
            columns=("msg_id", "type", "company", "payload", "created_at", "fanned_out", "dedupe_key"),
        )
        await conn.execute("VACUUM ANALYZE webhook_event, webhook_endpoint, company")
    finally:
        await conn.close()


def _worker(url: str) -> None:
    """What each arq worker's cron job does, in a loop until nothing is due."""
    use_database(url)

    async def run() -> None:
        from portal import db
        from portal.domain.clock import utcnow
        from portal.domain.webhooks import delivery

        sender = delivery.http_sender(allow_private=True)
        await db.open_pool(max_size=4)
        try:
            async with delivery.new_client(sender.at_once) as client:  # as the worker opens it at start-up
                idle = 0
                while idle < 3:
                    fanned = await delivery.fan_out(utcnow(), limit=CHUNK)
                    sent = await delivery.deliver_due(utcnow(), sender, client, limit=CHUNK)
                    idle = idle + 1 if not fanned and not sum(sent.values()) else 0
                    if idle:
                        await asyncio.sleep(0.2)
        finally:
            await db.close_pool()

    asyncio.run(run())


async def main_async(url: str) -> None:
    use_database(url)
    port = _free_port()
    receiver_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-receiver-{port}"
    receiver_dir.mkdir(parents=True, exist_ok=True)
    (receiver_dir / "receiver.py").write_text(RECEIVER)
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "receiver:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=receiver_dir,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        started = time.perf_counter()
        await build(url, f"{base}/hooks")
        print(f"dataset: {EVENTS:,} events in {time.perf_counter() - started:.1f} s")
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_worker, args=(url,)) for _ in range(WORKERS)]
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        for process in workers:
            process.start()
        for process in workers:
            process.join()
        elapsed = time.perf_counter() - started
        # The workers' own CPU (joined children): what the deliveries cost, whatever else the machine ran.
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker_cpu = usage.ru_utime + usage.ru_stime
        conn = await asyncpg.connect(url)
        try:
            counts = dict(await conn.fetch("SELECT status, COUNT(*) FROM webhook_delivery GROUP BY status"))
            span = await conn.fetchval(
                "SELECT EXTRACT(EPOCH FROM max(delivered_at) - min(last_attempt_at)) FROM webhook_delivery"
            )
        finally:
            await conn.close()
        distinct, total, most = (int(x) for x in httpx.get(base).text.split())
        print(
            json.dumps(
                {"deliveries": counts, "receiver": {"distinct_ids": distinct, "requests": total, "most_of_one": most}}
            )
        )
        ok = counts.get("delivered") == EVENTS and distinct == EVENTS and most == 1
        print(
            f"{EVENTS:,} events by {WORKERS} workers: {elapsed:.1f} s from the workers' start "
            f"({float(span or 0):.1f} s first attempt to last delivery); target ≤ {TARGET_S:.0f} s; "
            f"{'checked' if ok else 'CHECK FAILED'}; workers' CPU {worker_cpu:.1f} s "
            f"({worker_cpu / EVENTS * 1000:.2f} ms a delivery); "
            f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    asyncio.run(main_async(args.database_url))


if __name__ == "__main__":
    main()
