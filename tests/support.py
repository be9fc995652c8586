"""Helpers shared by tests: databases, CSRF-aware forms, signing in."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from litestar import Litestar

from portal import db
from portal.domain.billing.payments import CardDetails, TestProcessor
from portal.domain.emails.content import render_rows
from portal.domain.imports.limits import ImportFiles
from portal.domain.licences.tabs import TALLY_DRIFT_SQL
from portal.piccolo_app import APP_CONFIG
from portal.services import import_files_of
from portal.settings import get_settings
from portal.tables import Company, OutboxEmail, Product

PASSWORD = "correct-horse-battery"
# Where the test app is reached: the links of the e-mails the tests render and deliver.
BASE_URL = get_settings().base_url
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def import_files_here() -> ImportFiles:
    """Where this run keeps uploaded CSV files (under its var dir) and the largest
    accepted: what the app's services carry, for tests that call the imports directly."""
    return import_files_of(get_settings())


async def create_pg_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_pg_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# A table a test filled with more rows than this is vacuumed after they are deleted.
_VACUUM_AFTER_ROWS = 500


async def reset_tables() -> None:
    """Empty what the test wrote. One query finds the tables holding rows (or, on
    PostgreSQL, whose id sequence moved) so that only those are emptied: most tests
    write a handful of the ~40 tables, and emptying all of them cost ~80 ms a test."""
    # Children first (the app lists parents first); the catalogue is the migrations' data and stays.
    tables = [t._meta.tablename for t in reversed(APP_CONFIG.table_classes) if t is not Product]
    touched_sql = " UNION ALL ".join(
        f"SELECT '{t}' AS name, NULL AS seq WHERE EXISTS (SELECT 1 FROM {t})" for t in tables
    )
    if db.is_postgres():
        touched_sql += (
            " UNION ALL SELECT c.relname, quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename)"
            " FROM pg_sequences s"
            " JOIN pg_depend d ON d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass"
            " JOIN pg_class c ON c.oid = d.refobjid"
            " WHERE s.last_value IS NOT NULL AND d.deptype IN ('a', 'i')"
        )
    found = await Company.raw(touched_sql)
    touched = {row["name"] for row in found}
    names = [t for t in tables if t in touched]
    if not names:
        return
    if db.is_postgres():
        # DELETE, not TRUNCATE: a TRUNCATE gives each table new files and took
        # 0.2-2.7 s a test; deleting a test's few rows takes milliseconds. With
        # the session a replica's, no trigger or foreign-key check fires while the
        # tables empty (their order would not matter, and no tally moves).
        bloated = []
        async with db.write_transaction():
            await Company.raw("SET LOCAL session_replication_role = replica")
            for name in names:
                gone = await Company.raw(
                    f"WITH gone AS (DELETE FROM {name} RETURNING 1) SELECT count(*) AS n FROM gone"
                )
                if gone[0]["n"] > _VACUUM_AFTER_ROWS:
                    bloated.append(name)
            sequences = [row["seq"] for row in found if row["seq"]]
            await Company.raw(
                "SELECT setval(CAST(s AS regclass), 1, false) FROM unnest(CAST({} AS text[])) AS s", sequences
            )
        if bloated:
            # The pages a big test filled stay behind its deleted rows until a vacuum
            # (and a server may run without autovacuum), to be read by every later test.
            await Company.raw(f"VACUUM {', '.join(bloated)}")
        return
    if "company" in touched:
        # The tree references itself: cut the branches before deleting the nodes,
        # renaming each so namesakes under different parents do not clash as top
        # partners on the sibling-name index.
        await Company.raw("UPDATE company SET parent = NULL, name = CAST(id AS TEXT)")
    for name in names:
        await Company.raw(f"DELETE FROM {name}")


async def open_transactions(grace_s: float = 2.0) -> list[dict]:
    """PostgreSQL: the other connections to this database still inside a transaction
    once `grace_s` has passed (a background task may be finishing one)."""
    if not db.is_postgres():
        return []
    sql = (
        "SELECT pid, state, left(query, 200) AS query, now() - xact_start AS open_for FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
    )
    deadline = asyncio.get_running_loop().time() + grace_s
    while (found := await Company.raw(sql)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    return found


async def tally_drift() -> list[dict]:
    """Where licence_tally (kept by triggers) disagrees with counting the users."""
    return await Company.raw(TALLY_DRIFT_SQL)


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[Litestar]:
    """Run the app's lifespan in a task of its own: Litestar enters an anyio task
    group on startup, which must be left from the task that entered it, and a
    pytest fixture's setup and teardown run in different tasks."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield app
    finally:
        stop.set()
        await task


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


async def post_form(client: httpx.AsyncClient, page: str, action: str, data: dict) -> httpx.Response:
    """Open `page` as a browser would, then submit a form to `action` with its CSRF token.
    Card fields in `data` are typed into the test processor's card page, as the
    browser does (card_through_processor); a card it refuses is its answer."""
    data, refused = await card_through_processor(client, data)
    if refused is not None:
        return refused
    opened = await client.get(page)
    return await client.post(action, data={**data, "_csrf_token": csrf_of(opened.text)})


CARD_FIELDS = ("card_number", "exp_month", "exp_year", "cvc")
_HANDED = re.compile(r'data-token="([^"]+)"')


async def card_through_processor(client: httpx.AsyncClient, data: dict) -> tuple[dict, httpx.Response | None]:
    """A billing form's fields as the browser sends them: the card is typed into the
    test processor's own page (the frame of the billing page), which posts it to
    the test processor's endpoint; the billing form carries only the token it hands
    back, as payment_method. Returns the form's fields and, when the card page
    refused the card, its answer (the billing form is then never sent)."""
    card = {k: v for k, v in data.items() if k in CARD_FIELDS}
    fields = {k: v for k, v in data.items() if k not in CARD_FIELDS}
    if not card:
        return fields, None
    page = await client.get("/test-processor/card")
    answer = await client.post("/test-processor/card", data={**card, "_csrf_token": csrf_of(page.text)})
    handed = _HANDED.search(answer.text)
    if handed is None:
        return fields, answer
    return {**fields, "payment_method": handed.group(1)}, None


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    response = await post_form(client, "/login", "/login", {"email": email, "password": password})
    assert response.status_code in (302, 303), response.text[:500]
    return response


async def csrf_headers(client: httpx.AsyncClient, page: str = "/") -> dict[str, str]:
    """The header htmx sends, read from the page's <body hx-headers>."""
    opened = await client.get(page, follow_redirects=True)
    match = re.search(r'"x-csrftoken": "([^"]+)"', opened.text)
    assert match, "page has no hx-headers CSRF token"
    return {"x-csrftoken": match.group(1)}


async def run_burst_worker(
    functions, redis_url: str | None = None, redis_pool: ArqRedis | None = None, ctx: dict | None = None
) -> Worker:
    """A real arq worker that runs every job queued, then stops; returned for its counts.
    `ctx`: what the worker's start-up would put there (billing jobs need "services")."""
    worker = Worker(
        ctx=ctx,
        functions=functions,
        redis_settings=RedisSettings.from_dsn(redis_url) if redis_url else None,
        redis_pool=redis_pool,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


# --- Card processor: handed to the domain and to the app, as start-up does -------

PROCESSOR = TestProcessor()  # for tests that do not count what the processor is asked


async def card_token(card: CardDetails, processor: TestProcessor = PROCESSOR) -> str:
    """What the test processor's card page hands the browser for `card`: the token a
    billing form posts (as payment_method)."""
    return (await processor.save_card(card)).token


async def handed_card(client: httpx.AsyncClient, number: str = "4242 4242 4242 4242") -> dict[str, str]:
    """The billing form's card field as the browser fills it from the test processor's frame."""
    fields, refused = await card_through_processor(
        client, {"card_number": number, "exp_month": "12", "exp_year": "2040", "cvc": "123"}
    )
    assert refused is None, refused.text[:500]
    return fields


async def texts_as_sent(where) -> list[str]:
    """The text of each e-mail `where` picks, in the order queued, as it goes (its links under BASE_URL)."""
    rows = await OutboxEmail.select().where(where).order_by(OutboxEmail.id)
    made = await render_rows(rows, BASE_URL)
    return [made[row["id"]].text for row in rows]
