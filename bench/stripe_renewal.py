"""Subscription renewals charged through the Stripe adapter against localstripe, on
PostgreSQL (docs/benchmarks.md, "Renewals through Stripe (localstripe)").

    python -m bench.stripe_renewal [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_stripe]
                                   [--customers 20000] [--workers 2] [--no-docs]

The dataset of bench.billing_renewal (its `build`), except each billing account's
card: a PaymentMethod (the test card 4242…) attached to a Customer of its own at a
localstripe of this run (tests/stripe_server.py), made through the `stripe` SDK
before the clock starts. Two real arq workers (`portal worker` with
PAYMENT_PROCESSOR=stripe and STRIPE_API_BASE at the localstripe) renew everything
as in bench.billing_renewal, whose checks then say each renewal happened once.

Where the time goes, read while the workers still run: CPU seconds of the
localstripe process, of the workers, and of the PostgreSQL backends serving the
bench database. Then, alone, the SDK's own share: CHARGES_ALONE charges through
StripeProcessor.charge in this process (the workers' calls, one at a time), with
this process's CPU (the SDK: building requests, parsing answers) and localstripe's
CPU per charge beside the wall time of each.

Drops and re-creates the database (its name must contain "bench")."""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.billing_renewal import build, check, cpu_model, run_from_command_line, run_workers

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_stripe"
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
# Cards are set up over a few connections at once: localstripe answers one at a time, but the SDK's
# own work and the round trips overlap.
SETUP_THREADS = 8
CHARGES_ALONE = 200
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc (readable for any process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def make_cards(client: Any, customers: int) -> list[str]:
    """One Customer and one attached PaymentMethod per billing account, as keep_card leaves them."""

    def one(i: int) -> str:
        customer = client.v1.customers.create({"email": f"billing.c{i}@bench.example"})
        method = client.v1.payment_methods.create({"type": "card", "card": CARD})
        client.v1.payment_methods.attach(method.id, {"customer": customer.id})
        return method.id

    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        return list(pool.map(one, range(customers)))


async def backends_cpu(url: str) -> tuple[int, float]:
    """The PostgreSQL backends connected to the bench database now, and their CPU seconds."""
    database = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url)
    try:
        pids = [r["pid"] for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)]
        own = await conn.fetchval("SELECT pg_backend_pid()")
    finally:
        await conn.close()
    total = 0.0
    counted = 0
    for pid in pids:
        if pid == own:
            continue
        try:
            total += cpu_seconds(pid)
            counted += 1
        except OSError:
            pass
    return counted, total


async def charges_alone(api_base: str, tokens: list[str], localstripe_pid: int) -> dict[str, float]:
    """The SDK's share: charges one at a time, in this process, through the adapter the workers use."""
    from portal.stripe_processor import StripeProcessor
    from tests.stripe_server import SECRET_KEY

    processor = StripeProcessor(SECRET_KEY, api_base=api_base)
    await processor.charge(tokens[0], 100, "USD", "alone:warm-up")
    wall, own, fake = time.perf_counter(), time.process_time(), cpu_seconds(localstripe_pid)
    for n in range(CHARGES_ALONE):
        result = await processor.charge(tokens[n % len(tokens)], 100, "USD", f"alone:{n}")
        assert result.ok, result
    return {
        "wall_ms": (time.perf_counter() - wall) * 1000 / CHARGES_ALONE,
        "sdk_cpu_ms": (time.process_time() - own) * 1000 / CHARGES_ALONE,
        "localstripe_cpu_ms": (cpu_seconds(localstripe_pid) - fake) * 1000 / CHARGES_ALONE,
    }


async def main_async(url: str, customers: int, workers: int, docs: bool) -> None:
    import stripe

    from tests.redis_server import start_private_redis
    from tests.stripe_server import SECRET_KEY, portal_env, start_localstripe

    load_before = os.getloadavg()[0]
    localstripe = start_localstripe(Path(tempfile.mkdtemp(prefix="bench-stripe-localstripe-")))
    assert localstripe.proc is not None
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe.url}, max_network_retries=0)
    t = time.perf_counter()
    tokens = make_cards(client, customers)
    setup_s = time.perf_counter() - t
    print(f"cards: {customers:,} Customers with a PaymentMethod each at localstripe in {setup_s:.1f} s")

    now = datetime.now(UTC).replace(microsecond=0)
    t = time.perf_counter()
    await build(url, customers, now, card_tokens=tokens)
    print(f"dataset: {customers:,} online subscriptions due within the day, in {time.perf_counter() - t:.1f} s")
    redis = start_private_redis(Path(tempfile.mkdtemp(prefix="bench-stripe-redis-")))
    costs: dict[str, float] = {}
    fake_pid = localstripe.proc.pid
    fake_before = cpu_seconds(fake_pid)

    async def read_costs(procs: list) -> None:
        costs["localstripe_cpu_s"] = cpu_seconds(fake_pid) - fake_before
        costs["workers_cpu_s"] = sum(cpu_seconds(p.pid) for p in procs)
        costs["backends"], costs["postgres_cpu_s"] = await backends_cpu(url)

    result = await run_workers(
        url,
        f"{redis.url}/0",
        workers,
        customers,
        now,
        extra_env=portal_env(localstripe),
        before_stop=read_costs,
        timeout_s=7_200,
    )
    load_after = os.getloadavg()[0]
    print(
        f"renewed: {customers:,} subscriptions through Stripe (localstripe) with {workers} arq workers in "
        f"{result['wall_s']:.1f} s ({result['rate']:.1f}/s; first renewal at {result['first_s']:.1f} s); "
        f"chunk jobs run per worker: {' + '.join(map(str, result['chunks']))}"
    )
    per = {k: costs[k] * 1000 / customers for k in ("localstripe_cpu_s", "workers_cpu_s", "postgres_cpu_s")}
    print(
        f"CPU per renewal: localstripe {per['localstripe_cpu_s']:.1f} ms, workers {per['workers_cpu_s']:.1f} ms, "
        f"PostgreSQL ({costs['backends']:.0f} backends) {per['postgres_cpu_s']:.1f} ms"
    )
    alone = await charges_alone(localstripe.url, tokens, fake_pid)
    print(
        f"{CHARGES_ALONE} charges one at a time in this process: {alone['wall_ms']:.1f} ms each, of which SDK CPU "
        f"{alone['sdk_cpu_ms']:.1f} ms and localstripe CPU {alone['localstripe_cpu_ms']:.1f} ms"
    )
    figures, problems = await check(url, customers, now)
    for name, value in figures.items():
        print(f"  {name}: {value:,}")
    print("exactly once: " + ("yes" if not problems else "NO"))
    for problem in problems:
        print(f"  ! {problem}")
    if docs:
        from bench.load import write_docs

        wall_ms = result["wall_s"] * 1000 / customers
        lines = [
            f"Run {now:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), PostgreSQL, "
            f"`python -m bench.stripe_renewal --customers {customers}`; load average {load_before:.1f} at the start, "
            f"{load_after:.1f} after the workers (the machine shared with other work).",
            "",
            "| what | figure |",
            "|---|---|",
            f"| {customers:,} Customers with a PaymentMethod each made at localstripe (setup, before the clock, "
            f"{SETUP_THREADS} connections) | {setup_s:.1f} s |",
            f"| {customers:,} online subscriptions due the same day, {workers} arq workers, each charged through "
            f"the Stripe adapter (a PaymentMethod read, an off-session PaymentIntent) | {result['wall_s']:.1f} s from "
            f"starting the workers ({result['rate']:.1f}/s, {wall_ms:.1f} ms a renewal; first renewal at "
            f"{result['first_s']:.1f} s) |",
            f"| extrapolated to 20,000 at that rate | {20_000 / result['rate']:.0f} s |"
            if customers != 20_000
            else "| (the full 20,000: nothing extrapolated) | |",
            f"| chunk jobs (500 each) run per worker | {' + '.join(map(str, result['chunks']))} |",
            f"| CPU per renewal, localstripe (one process, answers one request at a time) | "
            f"{per['localstripe_cpu_s']:.1f} ms |",
            f"| CPU per renewal, the 2 workers (our code, the SDK, arq, asyncpg) | {per['workers_cpu_s']:.1f} ms |",
            f"| CPU per renewal, PostgreSQL ({costs['backends']:.0f} backends of the bench database) | "
            f"{per['postgres_cpu_s']:.1f} ms |",
            f"| one charge alone through StripeProcessor.charge ({CHARGES_ALONE}, one at a time): wall | "
            f"{alone['wall_ms']:.1f} ms |",
            f"| … of which the SDK's CPU (this process) | {alone['sdk_cpu_ms']:.1f} ms |",
            f"| … of which localstripe's CPU | {alone['localstripe_cpu_ms']:.1f} ms |",
            f"| each renewed exactly once (invoices, charges, batches, seats, gapless numbers, tally) | "
            f"{'yes' if not problems else 'NO: ' + '; '.join(problems)} |",
        ]
        write_docs("stripe_renewal", "\n".join(lines))
    localstripe.stop()
    redis.stop()
    if problems:
        raise SystemExit(1)


def main() -> None:
    run_from_command_line(main_async, __doc__, DEFAULT_URL)


if __name__ == "__main__":
    main()
