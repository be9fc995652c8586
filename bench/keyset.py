"""The lists paged by cursor on the bench dataset, PostgreSQL: page 1, a deep page
reached by its cursor, and the same rows read by OFFSET, timed.

    python -m bench.keyset [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench_keyset] [--no-load]

Drops and re-creates that database (its name must contain "bench") with
bench.generate's dataset (1 partner, 5 sub-partners, 2,000 customers, 1,000,000
learners, 20,000 orders; "Bench Big Customer" has 50,000 expired learners), then
COPYs 200,000 e-mails and 200,000 invoices about the customers (their instants
shared by three rows each, so the id decides). As the top partner's manager, for
the Expired tab of the big customer (A→Z), Requested Orders (every status, newest
first), Notifications and the Invoices tab (newest first), times the domain's
page (the count beside the pager included) for

- page 1;
- a page 95 % of the way into the list, opened from its cursor (a "next" cursor
  made from the row before it, as the page before hands it out);
- the same rows read the way the pages were read before, LIMIT 25 OFFSET n, with
  the same count.

The cursor's page is checked to be the OFFSET's. Prints the median of 20 runs of
each (the three taken in turns), in milliseconds. --no-load times a database loaded before."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import BIG_CUSTOMER, PARTNER_EMAIL, use_database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench_keyset"
EMAILS = 200_000
INVOICES = 200_000
RUNS = 20
PER_PAGE = 25
DEEP = 0.95  # how far into each list the deep page is
SECRET = b"bench"


async def load(url: str) -> None:
    from bench.generate import generate

    await generate(url)
    rng = random.Random(3)
    now = datetime.now(UTC).replace(microsecond=0)
    conn = await asyncpg.connect(url)
    try:
        customers = await conn.fetch("SELECT id, path, parent FROM company WHERE kind = 'customer' ORDER BY id")
        emails = []
        for n in range(EMAILS):
            c = customers[rng.randrange(len(customers))]
            at = now - timedelta(seconds=(EMAILS - n) // 3 * 150)
            emails.append(
                ("order_assigned", c["id"], f"m.c{c['id']}@bench.example", "10 licenses are ready to allocate",
                 "10 licenses are assigned.", at, at, "sent", f"bench:{n}")
            )  # fmt: skip
        await conn.copy_records_to_table(
            "outbox_email",
            records=emails,
            columns=("kind", "company", "to_email", "subject", "body", "created_at", "sent_at", "status", "dedupe_key"),
        )
        invoices: list[tuple] = []
        numbers: dict[int, int] = {}
        for n in range(INVOICES):
            c = customers[rng.randrange(len(customers))]
            seller = c["parent"]
            number = numbers[seller] = numbers.get(seller, 0) + 1
            made = now - timedelta(seconds=(INVOICES - n) // 3 * 150)
            subtotal = rng.randrange(5_000, 2_000_000)
            tax = subtotal * 825 // 10_000
            invoices.append(
                (seller, c["id"], c["path"], number, "issued", "renewal", "USD", subtotal, 825, tax, subtotal + tax,
                 made, made, made + timedelta(days=30))
            )  # fmt: skip
        await conn.copy_records_to_table(
            "invoice",
            records=invoices,
            columns=("partner", "company", "company_path", "number", "status", "kind", "currency", "subtotal_cents",
                     "tax_rate_bp", "tax_cents", "total_cents", "created_at", "issued_at", "due_at"),
        )  # fmt: skip
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def timed(*fns: Callable[[], Awaitable[object]]) -> list[float]:
    """The median of RUNS runs of each of `fns`, in ms, run in turns: on a shared
    machine a burst of load then falls on all of them, not on one."""
    for fn in fns:
        await fn()  # warm: the first run of a statement plans it
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(RUNS):
        for fn, spent in zip(fns, times, strict=True):
            started = time.perf_counter()
            await fn()
            spent.append((time.perf_counter() - started) * 1000)
    return [statistics.median(spent) for spent in times]


async def measure() -> list[tuple[str, int, int, float, float, float]]:
    """(list, rows, deep page number, page 1 ms, deep page by cursor ms, deep page by OFFSET ms) per list."""
    from piccolo.columns.combination import WhereRaw

    from portal import db
    from portal.domain import outbox
    from portal.domain.access import load_actor, under_wing
    from portal.domain.billing import invoices
    from portal.domain.clock import utcnow
    from portal.domain.licences import tabs
    from portal.domain.orders import order_list
    from portal.tables import Company, LicenceOrder, OutboxEmail, User
    from portal.tables.billing import Invoice

    await db.open_pool(max_size=2)
    try:
        partner = await User.select(User.id).where(User.email == PARTNER_EMAIL).first()
        company = await Company.select(Company.id).where(Company.name == BIG_CUSTOMER).first()
        if partner is None or company is None:
            raise SystemExit("no bench dataset here: run without --no-load")
        partner_id, big = partner["id"], company["id"]
        actor = await load_actor(partner_id, None)
        assert actor is not None, "the bench's partner manager signs in"
        now = utcnow()
        every = order_list.parse_filters({"status": order_list.ANY_STATUS})
        results = []

        async def one(name, walk, first_page, cursor_page, offset_rows, count):
            total = await count()
            deep = max(2, int(total / PER_PAGE * DEEP))
            skipped = (deep - 1) * PER_PAGE
            before = await offset_rows(skipped - 1, 1)
            cursor = walk.encode(before[0], "next", skipped)
            page = await cursor_page(cursor)
            offset_ids = [row["id"] for row in await offset_rows(skipped, PER_PAGE)]
            assert [row["id"] for row in page.items] == offset_ids, f"{name}: the cursor's page is the OFFSET's"
            assert page.first_number == skipped + 1, name

            async def by_offset():
                await count()
                await offset_rows(skipped, PER_PAGE)

            first, by_cursor, offset = await timed(first_page, lambda: cursor_page(cursor), by_offset)
            results.append((name, total, deep, first, by_cursor, offset))

        # The Expired tab, A→Z (its count comes from the tally, as on the page).
        expired = (
            (User.company == big)
            & WhereRaw("portal_user.active")
            & (User.licence_ends_at <= now)
            & User.id.is_not_null()
        )
        await one(
            "Expired tab of the big customer",
            tabs.tab_keyset(big, "expired", SECRET),
            lambda: tabs.licence_view(actor, big, "expired", "", None, now, SECRET),
            lambda c: _listing(tabs.licence_view(actor, big, "expired", "", c, now, SECRET)),
            lambda skip, n: (
                User.select(User.id, User.name).where(expired).order_by(User.name, User.id).limit(n).offset(skip)
            ),
            lambda: _expired_count(tabs.tab_counts(actor, big, now)),
        )
        wing_orders = under_wing(actor, LicenceOrder.company_path)
        await one(
            "Requested Orders (every status)",
            order_list.orders_keyset(f"requested-orders:{actor.company_path}", SECRET),
            lambda: order_list.list_orders(actor, every, None, SECRET),
            lambda c: order_list.list_orders(actor, every, c, SECRET),
            lambda skip, n: LicenceOrder.raw(
                order_list._rows(order_list._ORDER_ROWS, n, skip),
                (wing_orders & LicenceOrder.status.is_not_null()).querystring,
            ),
            lambda: LicenceOrder.count().where(wing_orders & LicenceOrder.status.is_not_null()),
        )
        wing_emails = under_wing(actor, OutboxEmail.company.path)
        await one(
            "Notifications",
            outbox.emails_keyset(actor, SECRET),
            lambda: outbox.list_emails(actor, None, SECRET, {}),
            lambda c: outbox.list_emails(actor, c, SECRET, {}),
            lambda skip, n: (
                OutboxEmail.select(OutboxEmail.id, OutboxEmail.created_at, OutboxEmail.subject)
                .where(wing_emails)
                .order_by(OutboxEmail.created_at, OutboxEmail.id, ascending=False)
                .limit(n)
                .offset(skip)
            ),
            lambda: OutboxEmail.count().where(wing_emails),
        )
        wing_invoices = under_wing(actor, Invoice.company_path)
        await one(
            "Invoices tab",
            invoices.invoices_keyset(actor, SECRET),
            lambda: invoices.list_invoices(actor, {}, None, SECRET),
            lambda c: invoices.list_invoices(actor, {}, c, SECRET),
            lambda skip, n: (
                Invoice.select(*invoices._LIST_COLUMNS)
                .where(wing_invoices)
                .order_by(Invoice.created_at, Invoice.id, ascending=False)
                .limit(n)
                .offset(skip)
            ),
            lambda: Invoice.count().where(wing_invoices),
        )
        return results
    finally:
        await db.close_pool()


async def _listing(view: Awaitable[dict]):
    return (await view)["listing"]


async def _expired_count(counts: Awaitable[dict[str, int]]) -> int:
    return (await counts)["expired"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--no-load", action="store_true", help="time the database as loaded before")
    args = parser.parse_args()
    use_database(args.database_url)
    if not args.no_load:
        started = time.perf_counter()
        asyncio.run(load(args.database_url))
        print(f"load: {time.perf_counter() - started:.1f} s")
    results = asyncio.run(measure())
    load_average = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"median of {RUNS} runs, ms; load average {load_average}")
    print("| list | rows | page 1 | deep page by cursor | the same page by OFFSET | deep ÷ page 1 |")
    print("|---|---|---|---|---|---|")
    for name, total, deep, first, cursor, offset in results:
        ratio = cursor / first
        print(f"| {name} | {total:,} | {first:.1f} | {cursor:.1f} (page {deep:,}) | {offset:.1f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
