"""Delivery under faults: a batch cancelled in the middle, a server slower than
the lease, a server that answers late, a worker killed holding rows. Each
e-mail still goes, once, and soon. Both engines, real SMTP on loopback."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

import pytest

from portal.domain import outbox
from portal.mail import delivery
from portal.mail.delivery import deliver_batch
from portal.mail.smtp import parse_smtp_url
from portal.tables import OutboxEmail
from tests.factories import T0
from tests.support import BASE_URL
from tests.test_mail_delivery import Sink, SmtpServer, queue, rows

DEADLINE = 30.0


class Clock:
    """A clock a test (or the SMTP server's handler) moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class HoldingSink(Sink):
    """Keeps the first message's DATA unanswered until `hold` is let go."""

    def __init__(self) -> None:
        super().__init__()
        self.in_data = threading.Event()
        self.let_go = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        if not self.in_data.is_set():
            self.in_data.set()
            while not self.let_go.is_set():
                await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def holding():
    server = SmtpServer()
    server.sink = HoldingSink()
    server.start()
    yield server
    server.sink.let_go.set()
    server.stop()


def quick(server: SmtpServer):
    """The server's config with a short timeout: a cancelled batch's QUIT waits on a held server."""
    return parse_smtp_url(f"smtp://127.0.0.1:{server.port}?from=portal@acme.example&timeout=1")


async def eventually(check, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


async def claimed_until() -> list:
    return [r["claimed_until"] for r in await OutboxEmail.select(OutboxEmail.claimed_until).order_by(OutboxEmail.id)]


async def test_a_cancelled_batch_gives_back_the_rows_it_had_not_sent_at_once(tree, holding):
    await queue(tree, [tree.email("north"), tree.email("direct"), tree.email("partner")])
    batch = asyncio.create_task(deliver_batch(T0, quick(holding), base_url=BASE_URL))
    await eventually(lambda: _true(holding.sink.in_data.is_set()), "the first message reached DATA")
    batch.cancel()  # a worker stopping, or the job's timeout
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert await claimed_until() == [None, None, None]
    assert {r["attempts"] for r in (await rows()).values()} == {0}
    holding.sink.let_go.set()
    # Another worker takes them now, not after the lease.
    done = await deliver_batch(T0 + timedelta(seconds=1), holding.config, base_url=BASE_URL)
    assert done.sent == 3


async def test_a_batch_that_fails_on_something_unforeseen_gives_its_rows_back_to_wait_and_retry(
    tree, smtp, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in building the message")

    monkeypatch.setattr(delivery, "build_message", broken)
    await queue(tree, [tree.email("north"), tree.email("direct")])
    with pytest.raises(RuntimeError):
        await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    waiting = list((await rows()).values())
    assert {(r["status"], r["claim_token"], r["next_attempt_at"]) for r in waiting} == {
        ("queued", None, T0 + outbox.retry_delay(1))
    }
    assert {r["error"] for r in waiting} == {"RuntimeError: a bug in building the message"}
    monkeypatch.undo()
    assert (await deliver_batch(T0 + outbox.retry_delay(1), smtp.config, base_url=BASE_URL)).sent == 2


async def test_sent_at_and_the_next_try_count_from_the_servers_answer_not_the_claim(tree, smtp_clocked):
    server, clock = smtp_clocked
    await queue(tree, ["slow@north.example", "later@north.example"])
    done = await deliver_batch(T0, server.config, clock=clock, base_url=BASE_URL)
    assert (done.sent, done.retrying) == (1, 1)
    sent, waiting = (await rows())["slow@north.example"], (await rows())["later@north.example"]
    assert sent["sent_at"] == T0 + timedelta(seconds=40)
    assert waiting["next_attempt_at"] == T0 + timedelta(minutes=10) + outbox.retry_delay(1)
    # Right after the late answer, the refused e-mail is not tried again.
    assert (await deliver_batch(T0 + timedelta(minutes=10, seconds=1), server.config, base_url=BASE_URL)).claimed == 0


@pytest.fixture
def smtp_clocked():
    """A server whose answers come late: 250 to DATA 40 s after the claim, 451
    to "later…" 10 minutes after it."""
    clock = Clock(T0)

    class Late(Sink):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.startswith("later"):
                clock.now = T0 + timedelta(minutes=10)
            return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

        async def handle_DATA(self, server, session, envelope):
            clock.now = T0 + timedelta(seconds=40)
            return await super().handle_DATA(server, session, envelope)

    server = SmtpServer()
    server.sink = Late()
    server.start()
    yield server, clock
    server.stop()


async def test_a_batch_slower_than_its_lease_keeps_its_rows_while_it_works(tree, holding, monkeypatch):
    monkeypatch.setattr(delivery, "HEARTBEAT_S", 0.05)
    await queue(tree, [tree.email("north")])
    clock = Clock(T0)
    batch = asyncio.create_task(deliver_batch(T0, holding.config, clock=clock, base_url=BASE_URL))
    await eventually(lambda: _true(holding.sink.in_data.is_set()), "the message reached DATA")
    clock.now = later = T0 + 3 * outbox.LEASE  # the server has been slow for three leases
    await eventually(lambda: _equals(claimed_until, [later + outbox.LEASE]), "the claim was renewed")
    # Another worker, then, finds nothing to take.
    assert (await deliver_batch(later + timedelta(seconds=1), holding.config, base_url=BASE_URL)).claimed == 0
    holding.sink.let_go.set()
    assert (await asyncio.wait_for(batch, DEADLINE)).sent == 1
    assert len(holding.sink.messages) == 1
    assert await claimed_until() == [None]


async def test_a_killed_workers_emails_go_with_another_worker_within_30_seconds(tree, smtp):
    await queue(tree, [tree.email("north"), tree.email("direct")])
    assert len(await outbox.claim(T0, "killed-worker-token", limit=10)) == 2  # and then nothing: killed
    # 21 s on, then at most one delivery tick (every 10 s) later: within 30 s.
    assert (await deliver_batch(T0 + timedelta(seconds=21), smtp.config, base_url=BASE_URL)).sent == 2


@pytest.fixture
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


async def _true(value: bool) -> bool:
    return value


async def _equals(get, expected) -> bool:
    return await get() == expected
