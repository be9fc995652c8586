"""Outbox delivery over real SMTP (aiosmtpd on loopback): sent, captured,
failed with the server's answer, retried when the server is away, reclaimed
when a worker died holding rows. Both engines."""

from __future__ import annotations

import asyncio
import email
import socket
from datetime import timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller

from portal.domain import outbox
from portal.domain.access import load_actor
from portal.domain.errors import ValidationFailed
from portal.mail.delivery import deliver_batch
from portal.mail.smtp import InvalidSmtpUrl, parse_smtp_url
from portal.tables import AuditEntry, OutboxEmail
from tests.factories import T0, add_user
from tests.support import BASE_URL


class Sink:
    """An SMTP server's handler: keeps what it accepted; refuses addresses
    starting with "reject" (550) or "later" (451)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 <" + address + ">: no such mailbox"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"

    def to(self) -> list[str]:
        return sorted(m["To"] for m in self.messages)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.sink = Sink()
        self.port = port or free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def config(self):
        return parse_smtp_url(f"smtp://127.0.0.1:{self.port}?from=portal@acme.example&timeout=5")


@pytest.fixture
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


async def queue(tree, to: list[str], kind: str = "order_assigned", dedupe: str = "event:1") -> None:
    await outbox.queue_email(
        kind,
        tree.north["id"],
        to,
        "12 licenses are ready to allocate",
        "Allocate them here:\nhttp://127.0.0.1:8000/companies/1/licences?tab=expired",
        T0,
        dedupe=dedupe,
    )


async def rows() -> dict[str, dict]:
    return {r["to_email"]: r for r in await OutboxEmail.select().order_by(OutboxEmail.id)}


async def test_without_smtp_url_emails_are_captured_not_failed(tree):
    await queue(tree, [tree.email("north")])
    done = await deliver_batch(T0, None, base_url=BASE_URL)
    assert (done.claimed, done.captured) == (1, 1)
    row = (await rows())[tree.email("north")]
    assert row["status"] == "captured" and row["sent_at"] == T0 and row["error"] is None
    assert "ready to allocate" in row["subject"] and "<a href=" in row["html"]
    assert await deliver_batch(T0 + timedelta(minutes=1), None, base_url=BASE_URL) == type(done)()  # nothing left


async def test_sent_as_multipart_from_the_partner_with_reply_to_its_account_manager(tree, smtp):
    await queue(tree, [tree.email("north")])
    done = await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    assert done.sent == 1
    (message,) = smtp.sink.messages
    assert message["From"].addresses[0].display_name == "Acme North"  # the nearest partner above
    assert message["From"].addresses[0].addr_spec == "portal@acme.example"
    assert message["Reply-To"] == tree.email("sub")
    assert message.get_content_type() == "multipart/alternative"
    assert "Allocate them here" in message.get_body(("plain",)).get_content()
    assert "tab=expired" in message.get_body(("html",)).get_content()
    row = (await rows())[tree.email("north")]
    assert (row["status"], row["sent_at"], row["sender"], row["reply_to"]) == (
        "sent",
        T0,
        "Acme North",
        tree.email("sub"),
    )
    assert message["Message-ID"] == f"<outbox-{row['id']}@acme.example>"


async def test_a_rejected_address_fails_with_the_servers_answer_and_the_others_still_go(tree, smtp):
    for address in ("first@north.example", "reject-me@north.example", "last@north.example"):
        await add_user(tree.north, address)
    await queue(tree, ["first@north.example", "reject-me@north.example", "last@north.example"])
    done = await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    assert (done.sent, done.failed) == (2, 1)
    assert smtp.sink.to() == ["first@north.example", "last@north.example"]
    failed = (await rows())["reject-me@north.example"]
    assert failed["status"] == "failed" and failed["error"].startswith("550 5.1.1")
    assert "no such mailbox" in failed["error"]
    # Not retried: the next run claims nothing.
    assert (await deliver_batch(T0 + timedelta(hours=2), smtp.config, base_url=BASE_URL)).claimed == 0


async def test_resend_of_a_failed_email_queues_an_audited_copy_that_goes(tree, smtp):
    await queue(tree, ["reject-me@north.example"])
    await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    failed = (await rows())["reject-me@north.example"]
    partner = await load_actor(tree.managers["partner"]["id"], None)
    smtp.sink.handle_RCPT = _accept_all  # the mailbox was created meanwhile
    copy_id = await outbox.resend(partner, failed["id"], T0 + timedelta(hours=1))
    with pytest.raises(ValidationFailed):  # a second click while the copy waits
        await outbox.resend(partner, failed["id"], T0 + timedelta(hours=1))
    done = await deliver_batch(T0 + timedelta(hours=1), smtp.config, base_url=BASE_URL)
    assert done.sent == 1 and smtp.sink.to() == ["reject-me@north.example"]
    copy = await OutboxEmail.select().where(OutboxEmail.id == copy_id).first()
    assert (copy["status"], copy["resent_from"]) == ("sent", failed["id"])
    entry = await AuditEntry.select().where(AuditEntry.action == "email.resend").output(load_json=True).first()
    assert entry["detail"]["email"] == failed["id"] and entry["actor"] == partner.user_id
    # Another tenant's manager cannot see it, nor resend it.
    other = await load_actor(tree.managers["other"]["id"], None)
    with pytest.raises(Exception, match="No such e-mail"):
        await outbox.resend(other, failed["id"], T0)


async def _accept_all(server, session, envelope, address, rcpt_options):
    envelope.rcpt_tos.append(address)
    return "250 OK"


async def test_a_sent_email_cannot_be_resent(tree, smtp):
    await queue(tree, [tree.email("north")])
    await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    with pytest.raises(ValidationFailed, match="Only an e-mail that failed or was not sent"):
        await outbox.resend(partner, (await rows())[tree.email("north")]["id"], T0)


async def test_smtp_down_emails_wait_and_go_once_when_it_is_back(tree):
    server = SmtpServer()  # not started: connections are refused
    await queue(tree, [tree.email("north"), tree.email("direct")])
    done = await deliver_batch(T0, server.config, base_url=BASE_URL)
    assert (done.claimed, done.retrying, done.sent) == (2, 2, 0)
    waiting = await rows()
    assert {r["status"] for r in waiting.values()} == {"queued"}
    assert all(r["next_attempt_at"] == T0 + outbox.FIRST_RETRY for r in waiting.values())
    assert all("Connect" in r["error"] or "refused" in r["error"].lower() for r in waiting.values())
    # Before the backoff is over nothing is tried, even with the server back.
    server.start()
    try:
        assert (await deliver_batch(T0 + timedelta(seconds=10), server.config, base_url=BASE_URL)).claimed == 0
        done = await deliver_batch(T0 + timedelta(seconds=31), server.config, base_url=BASE_URL)
        assert done.sent == 2 and len(server.sink.messages) == 2
        assert (await deliver_batch(T0 + timedelta(hours=1), server.config, base_url=BASE_URL)).claimed == 0
    finally:
        server.stop()
    sent = await rows()
    assert {(r["status"], r["attempts"], r["error"]) for r in sent.values()} == {("sent", 2, None)}


async def test_a_4xx_answer_retries_with_backoff_then_gives_up(tree, smtp):
    await queue(tree, ["later@north.example"])
    now = T0
    for attempt in range(1, outbox.MAX_ATTEMPTS):
        done = await deliver_batch(now, smtp.config, base_url=BASE_URL)
        assert done.retrying == 1, attempt
        row = (await rows())["later@north.example"]
        assert row["next_attempt_at"] == now + outbox.retry_delay(attempt) and row["error"].startswith("451")
        now = row["next_attempt_at"]
    done = await deliver_batch(now, smtp.config, base_url=BASE_URL)
    row = (await rows())["later@north.example"]
    assert done.failed == 1 and row["status"] == "failed"
    assert row["error"].startswith(f"Gave up after {outbox.MAX_ATTEMPTS} attempts: 451")
    assert smtp.sink.messages == []


async def test_a_worker_killed_after_claiming_leaves_rows_that_go_once_after_the_lease(tree, smtp):
    await queue(tree, [tree.email("north"), tree.email("direct")])
    # A worker claims both rows, then dies before any SMTP server accepted them.
    claimed = await outbox.claim(T0, "dead-worker-token", limit=10)
    assert len(claimed) == 2
    # While the lease runs, no other worker takes them.
    assert (await deliver_batch(T0 + outbox.LEASE - timedelta(seconds=1), smtp.config, base_url=BASE_URL)).claimed == 0
    done = await deliver_batch(T0 + outbox.LEASE + timedelta(seconds=1), smtp.config, base_url=BASE_URL)
    assert done.sent == 2 and sorted(smtp.sink.to()) == sorted([tree.email("north"), tree.email("direct")])
    # The dead worker's token can no longer change them.
    assert not await outbox.finish(claimed[0]["id"], "dead-worker-token", "failed", T0, outbox.Content("s", "t", "h"))
    assert (await deliver_batch(T0 + timedelta(hours=1), smtp.config, base_url=BASE_URL)).claimed == 0
    assert len(smtp.sink.messages) == 2


async def test_workers_delivering_at_once_send_each_email_once(tree, smtp):
    recipients = [f"user{i}@north.example" for i in range(60)]
    await queue(tree, recipients)
    results = await asyncio.gather(*(deliver_batch(T0, smtp.config, limit=7, base_url=BASE_URL) for _ in range(12)))
    assert sum(r.sent for r in results) == 60
    assert smtp.sink.to() == sorted(recipients)
    assert {r["status"] for r in (await rows()).values()} == {"sent"}


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://mail.example", "scheme must be smtp or smtps"),
        ("smtp://", "names no host"),
        ("smtp://mail.example:notaport", "Port could not be cast"),
        ("smtp://mail.example?starttls=maybe", "starttls must be yes or no"),
        ("smtps://mail.example?starttls=yes", "starttls is for smtp://"),
        ("smtp://mail.example?form=me@x.example", "unknown option 'form'"),
        ("smtp://mail.example?from=nobody", "from must be an e-mail address"),
        ("smtp://user@mail.example", "give both user and password"),
        ("smtp://mail.example/inbox", "it has a path"),
    ],
)
def test_a_bad_smtp_url_is_refused_with_the_reason(url, says):
    with pytest.raises(InvalidSmtpUrl, match="SMTP_URL is not usable") as refused:
        parse_smtp_url(url)
    assert says in str(refused.value)


def test_smtp_url_forms():
    plain = parse_smtp_url("smtp://mail.example")
    assert (plain.host, plain.port, plain.use_tls, plain.start_tls, plain.username) == (
        "mail.example",
        25,
        False,
        None,
        None,
    )
    tls = parse_smtp_url("smtps://me%40acme.example:p%2Fss@mail.example?from=portal@acme.example")
    assert (tls.port, tls.use_tls, tls.username, tls.password) == (465, True, "me@acme.example", "p/ss")
    assert "p/ss" not in repr(tls)
    assert parse_smtp_url("smtp://mail.example:587?starttls=yes").start_tls is True
    assert parse_smtp_url("smtp://mail.example?starttls=no").start_tls is False


async def test_an_address_that_cannot_go_on_the_envelope_fails_and_the_others_still_go(tree, smtp):
    await queue(tree, ["first@north.example", "two words@north.example", "last@north.example"])
    done = await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    assert (done.sent, done.failed) == (2, 1)
    bad = (await rows())["two words@north.example"]
    assert bad["status"] == "failed" and bad["error"].startswith("Not a deliverable address")
    assert smtp.sink.to() == ["first@north.example", "last@north.example"]


async def test_non_ascii_subject_and_sender_name_arrive_intact(tree, smtp):
    from portal.tables import Company

    await Company.update({Company.name: "Acmé Nörth"}).where(Company.id == tree.sub["id"])
    await outbox.queue_email(
        "order_assigned", tree.north["id"], [tree.email("north")], "Licences prêtes — 12", "Voilà", T0, "x"
    )
    await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    (message,) = smtp.sink.messages
    assert message["Subject"] == "Licences prêtes — 12"
    assert message["From"].addresses[0].display_name == "Acmé Nörth"
    assert message.get_body(("plain",)).get_content().strip() == "Voilà"


async def test_a_line_break_in_a_subject_cannot_add_a_header(tree, smtp):
    await outbox.queue_email(
        "order_assigned", tree.north["id"], [tree.email("north")], "Hello\r\nBcc: spy@evil.example", "Hi", T0, "x"
    )
    await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    (message,) = smtp.sink.messages
    assert message["Bcc"] is None and message["Subject"] == "Hello Bcc: spy@evil.example"
