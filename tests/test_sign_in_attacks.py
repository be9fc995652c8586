"""Sign-in as an attacker tries it: guessing, throttling, and argon2 kept off the event loop.

Regression tests: on the code before this change, 40 guesses at once all had
their password checked, an unknown address answered unlike a manager's, the
per-address limit let more than its limit through when two processes shared
Redis, X-Forwarded-For from 127.0.0.1 was believed, and argon2 ran on the event
loop (so a sign-in never waited for the pool while /healthz answered)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
from dataclasses import replace
from datetime import timedelta

import anyio.to_thread
import httpx
import pytest
import uvicorn

from portal.domain import passwords
from portal.domain import sign_in as signing
from portal.settings import get_settings
from portal.tables import User
from portal.web.app import create_app
from portal.web.throttle import MemoryCounter, RedisCounter
from tests.factories import T0, add_user
from tests.redis_server import free_port
from tests.support import PASSWORD, csrf_of, running

_ALERT = re.compile(r'<p class="alert error" role="alert">([^<]*)</p>')


def _alert(html: str) -> str:
    match = _ALERT.search(html)
    assert match, "the page shows no error"
    return match.group(1)


def _address() -> str:
    """An address of its own per test: the Redis-backed limiter outlives an app."""
    return f"198.51.100.{secrets.randbelow(250) + 1}"


@pytest.fixture
def checked(monkeypatch) -> list[str | None]:
    """The hashes argon2 was asked to check, in order (the real check still runs)."""
    seen: list[str | None] = []
    real = passwords._verify

    def spy(password_hash: str | None, password: str) -> bool:
        seen.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(passwords, "_verify", spy)
    return seen


async def _csrf(client: httpx.AsyncClient, page: str = "/login") -> str:
    return csrf_of((await client.get(page)).text)


async def test_forty_guesses_at_once_check_at_most_five_passwords(client, tree, checked):
    token = await _csrf(client)
    email = tree.email("direct")
    guesses = [
        client.post("/login", data={"email": email, "password": f"guess-{n:02d}-wrong", "_csrf_token": token})
        for n in range(40)
    ]
    answers = await asyncio.gather(*guesses)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [400] * signing.SIGN_IN_ATTEMPTS + [429] * (40 - signing.SIGN_IN_ATTEMPTS)
    assert len(checked) == signing.SIGN_IN_ATTEMPTS
    # The right password, arriving after them in the same minute, is not checked either.
    right = await client.post("/login", data={"email": email, "password": PASSWORD, "_csrf_token": token})
    assert right.status_code == 429 and "session" not in right.cookies
    assert len(checked) == signing.SIGN_IN_ATTEMPTS
    assert right.headers["retry-after"].isdigit()


async def test_unknown_learner_and_manager_addresses_answer_alike(client, tree, checked):
    await add_user(tree.north, "learner@north.example", role="learner")
    await add_user(tree.north, "invited@north.example", password=False)  # a manager with no password yet
    token = await _csrf(client)
    seen: dict[str, list[tuple[int, str]]] = {}
    for email in ("nobody@north.example", "learner@north.example", "invited@north.example", tree.email("north")):
        before = len(checked)
        seen[email] = []
        for _ in range(signing.SIGN_IN_ATTEMPTS + 2):
            answer = await client.post(
                "/login", data={"email": email, "password": "not-the-password", "_csrf_token": token}
            )
            seen[email].append((answer.status_code, _alert(answer.text)))
        # The same argon2 work for each: five checks, none once throttled.
        assert len(checked) - before == signing.SIGN_IN_ATTEMPTS, email
    answers = list(seen.values())
    assert all(answer == answers[0] for answer in answers), seen
    assert (
        answers[0]
        == [(400, signing.WRONG_CREDENTIALS)] * signing.SIGN_IN_ATTEMPTS + [(429, signing.TOO_MANY_SIGN_INS)] * 2
    )
    # Only a manager's own hash was ever checked; the others went against the dummy.
    manager_hash = await User.select(User.password_hash).where(User.email == tree.email("north")).first()
    assert checked.count(manager_hash["password_hash"]) == signing.SIGN_IN_ATTEMPTS
    assert checked.count(None) == 3 * signing.SIGN_IN_ATTEMPTS


@pytest.mark.parametrize("counter_kind", ["memory", "redis"])
async def test_the_counter_adds_and_reads_in_one_step(counter_kind):
    counter = MemoryCounter() if counter_kind == "memory" else RedisCounter(os.environ["PORTAL_TEST_REDIS"])
    key, window = f"test:{secrets.token_hex(4)}", signing.SIGN_IN_WINDOW
    try:
        hits = await asyncio.gather(*(counter.hit(key, window, T0) for _ in range(100)))
        assert sorted(hit.attempts for hit in hits) == list(range(1, 101))
        assert all(0 < hit.retry_after <= window.total_seconds() for hit in hits)
        await counter.forget(key)
        assert (await counter.hit(key, window, T0)).attempts == 1
    finally:
        await counter.close()


async def test_a_window_opens_at_the_first_attempt():
    counter, window = MemoryCounter(), signing.SIGN_IN_WINDOW
    assert (await counter.hit("k", window, T0)).attempts == 1
    late = await counter.hit("k", window, T0 + window - timedelta(seconds=1))
    assert late == signing.Hit(2, 1)
    assert (await counter.hit("k", window, T0 + window)).attempts == 1


async def test_two_processes_on_one_redis_let_exactly_the_limit_through(tree):
    """Two app instances sharing the Redis of the production shape, 100 tries at
    once from one address: exactly `limit` reach the password check."""
    limit = 10
    settings = replace(get_settings(), redis_url=os.environ["PORTAL_TEST_REDIS"])
    address = _address()
    async with (
        running(create_app(settings, sign_ins_per_minute=limit)) as one,
        running(create_app(settings, sign_ins_per_minute=limit)) as two,
    ):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://t")
            for app in (one, two)
        ]
        try:
            tokens = [await _csrf(c) for c in clients]
            tries = [
                clients[n % 2].post(
                    "/login",
                    # A different account each time, so only the address limit applies.
                    data={"email": f"guess{n}@example.test", "password": "x" * 12, "_csrf_token": tokens[n % 2]},
                )
                for n in range(100)
            ]
            answers = await asyncio.gather(*tries)
        finally:
            for c in clients:
                await c.aclose()
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(400) == limit and statuses.count(429) == 100 - limit
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert "Too many sign-in attempts from your address" in refused.text
    assert '<form method="post" action="/login"' in refused.text  # the form, to try again later


async def _served(settings, sign_ins_per_minute: int):
    """The app behind uvicorn with the proxy options `portal serve` uses."""
    from portal.cli import uvicorn_options

    options = uvicorn_options(settings, 1)
    config = uvicorn.Config(
        create_app(settings, sign_ins_per_minute=sign_ins_per_minute),
        host="127.0.0.1",
        port=free_port(),
        proxy_headers=options["proxy_headers"],
        forwarded_allow_ips=options["forwarded_allow_ips"],
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    return server, task, f"http://127.0.0.1:{config.port}"


async def _tries_with_forwarded_for(url: str, addresses: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=url) as client:
        token = await _csrf(client)
        statuses = []
        for n, address in enumerate(addresses):
            answer = await client.post(
                "/login",
                data={"email": f"fwd{n}@example.test", "password": "x" * 12, "_csrf_token": token},
                headers={"X-Forwarded-For": address},
            )
            statuses.append(answer.status_code)
        return statuses


@pytest.mark.parametrize("trusted", [None, "127.0.0.1"])
async def test_forwarded_for_is_believed_only_from_trusted_proxies(tree, trusted):
    settings = replace(get_settings(), forwarded_allow_ips=trusted)
    server, task, url = await _served(settings, sign_ins_per_minute=3)
    try:
        rotating = await _tries_with_forwarded_for(url, [_address() for _ in range(4)])
        if trusted:
            # Each forwarded client is counted apart, and one client is still limited.
            assert rotating == [400, 400, 400, 400]
            one = _address()
            assert await _tries_with_forwarded_for(url, [one] * 4) == [400, 400, 400, 429]
        else:
            # Unset: the header is ignored, the socket peer is counted, rotating it gains nothing.
            assert rotating == [400, 400, 400, 429]
    finally:
        server.should_exit = True
        await task


async def test_sign_ins_wait_for_the_password_pool_and_other_pages_do_not(client, tree):
    """Fill the argon2 pool with blocked work: sign-ins queue for it while
    /healthz is answered. On the event loop, argon2 would not wait for the pool."""
    pool = passwords.pool()
    release = threading.Event()
    blockers = [
        asyncio.create_task(anyio.to_thread.run_sync(release.wait, limiter=pool)) for _ in range(pool.total_tokens)
    ]
    sign_ins: list[asyncio.Task] = []
    try:
        await _until(lambda: pool.borrowed_tokens == pool.total_tokens)
        token = await _csrf(client)
        sign_ins = [
            asyncio.create_task(
                client.post("/login", data={"email": tree.email(key), "password": PASSWORD, "_csrf_token": token})
            )
            for key in ("partner", "north", "direct")
        ]
        await _until(lambda: pool.statistics().tasks_waiting == len(sign_ins))
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert not any(task.done() for task in sign_ins), "a sign-in finished without a thread of the pool"
    finally:
        release.set()
        await asyncio.gather(*blockers)
    answers = await asyncio.gather(*sign_ins)
    assert [answer.status_code for answer in answers] == [302, 302, 302]


async def _until(condition, tries: int = 1000) -> None:
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")
