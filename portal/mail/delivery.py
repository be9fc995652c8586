"""Delivering the outbox: claim a batch, open one SMTP connection, send each
row, record each outcome as soon as the server answers.

Outcomes:
- accepted → sent, recorded at once (one UPDATE per row, naming the claim);
- 5xx, or an address that cannot be sent to → failed, with the server's answer;
  the others of the batch still go;
- 4xx, a refused or dropped connection, a timeout → back in the queue with a
  growing delay (portal/domain/outbox.py `retry_delay`); the rest of the batch
  with it when the connection is gone;
- no SMTP_URL → captured: the text is kept and readable in the portal.

Never lost: a row is claimed with a lease (portal/db.py `claim_outbox`) that
a heartbeat renews while this worker works; if the worker dies before recording
an outcome, the lease runs out within outbox.LEASE and the next worker takes
the row again. A batch cancelled (a worker stopping, the job's timeout) gives
back the rows it had not tried at once; one that fails on something
unforeseen puts them back to wait as after a refusal.

Times recorded (`sent_at`, the next attempt after a refusal) are taken from the
clock when the server answered, not when the batch was claimed: with a slow
server the two are far apart.

Where an e-mail can go twice (docs/operations.md lists them with their
windows): the server accepted the message (DATA answered 250) and its "sent"
mark never committed, because the worker died, the database was unreachable, or
PostgreSQL crashed within the fraction of a second the mark's lazy commit
leaves; or the client gave up waiting for the server's answer (a timeout, a
cancelled batch) while the server went on to accept it. Each row is recorded
right after its own acceptance, never at the end of the batch, so a dead
worker or an unreachable database leaves at most one message per worker in
the window (a PostgreSQL crash: the marks of its last fraction of a second),
and the copy carries the same Message-ID (`<outbox-ROW@…>`) so mail clients
can fold it."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime

import aiosmtplib

from portal.domain import outbox
from portal.domain.clock import utcnow
from portal.domain.emails.content import render_rows
from portal.mail.smtp import SmtpConfig, build_message

log = logging.getLogger("portal.mail")

BATCH = 100
# Stop taking rows of a batch after this long and give the rest back, so one
# slow server does not hold a hundred e-mails; below the delivery job's timeout.
BATCH_SECONDS = 60.0
# Renew the claim this often: three chances within one lease.
HEARTBEAT_S = outbox.LEASE.total_seconds() / 3


@dataclass
class Delivered:
    claimed: int = 0
    sent: int = 0
    captured: int = 0
    failed: int = 0
    retrying: int = 0
    more: bool = False  # stopped for time while rows were still due

    def add(self, other: Delivered) -> None:
        for f in fields(self):
            if f.type == "int":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _answer(exc: BaseException) -> tuple[int | None, str]:
    """The SMTP reply code and text of a refusal."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code, f"{exc.code} {exc.message}".strip()
    return None, f"{type(exc).__name__}: {exc}"


async def deliver_batch(
    now: datetime,
    config: SmtpConfig | None,
    *,
    base_url: str,
    limit: int = BATCH,
    clock: Callable[[], datetime] | None = None,
) -> Delivered:
    """Claim and deliver one batch at `now`, the e-mails' links under `base_url`
    (where the portal is reached from outside); `clock` tells the time of each
    answer (without it, every answer is taken to come at `now`)."""
    answered_at = clock or (lambda: now)
    token = secrets.token_hex(16)
    rows = await outbox.claim(now, token, limit)
    done = Delivered(claimed=len(rows))
    if not rows:
        return done
    pending = list(rows)
    heartbeat = asyncio.create_task(_keep_claim(token, answered_at))
    try:
        await _deliver(rows, pending, token, now, config, base_url, answered_at, done)
    except Exception as exc:
        # Something unforeseen (a bug, the database): the rows not tried wait
        # as after a refusal, with a growing delay and failed after
        # MAX_ATTEMPTS, so a row that always fails cannot go round for ever.
        await _give_back(pending, token, failure=(answered_at(), f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        if pending:
            # Cancelled (a worker stopping, the job's timeout): the rows go
            # back now, not after the lease, the attempt not counted.
            await _give_back(pending, token)
    return done


async def _deliver(
    rows: list[dict],
    pending: list[dict],
    token: str,
    now: datetime,
    config: SmtpConfig | None,
    base_url: str,
    answered_at: Callable[[], datetime],
    done: Delivered,
) -> None:
    """Deliver `rows`, taking each out of `pending` once its outcome is recorded."""
    contents = await render_rows(rows, base_url, now)
    for row in [row for row in pending if contents[row["id"]].withdrawn]:
        content = contents[row["id"]]
        await outbox.finish(row["id"], token, "failed", now, content, content.withdrawn)
        pending.remove(row)
        done.failed += 1
    if config is None:
        while pending:
            row = pending[0]
            await outbox.finish(row["id"], token, "captured", now, contents[row["id"]], lazy=True)
            pending.pop(0)
            done.captured += 1
        return

    started = time.monotonic()
    try:
        async with config.client() as smtp:
            while pending:
                if time.monotonic() - started > BATCH_SECONDS:
                    await outbox.release([r["id"] for r in pending], token)
                    pending.clear()
                    break
                row = pending[0]
                content = contents[row["id"]]
                try:
                    message = build_message(config, row, content, now)
                    await smtp.sendmail(config.from_address, [row["to_email"]], message)
                except ValueError as exc:  # an address that cannot be put on the envelope
                    await outbox.finish(
                        row["id"], token, "failed", answered_at(), content, f"Not a deliverable address: {exc}"
                    )
                    pending.pop(0)
                    done.failed += 1
                    continue
                except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
                    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                        raise
                    code, text = _answer(exc)
                    if code is not None and 500 <= code < 600:
                        await outbox.finish(row["id"], token, "failed", answered_at(), content, text)
                        done.failed += 1
                    elif await outbox.try_later(row, token, answered_at(), text) == "failed":
                        done.failed += 1
                    else:
                        done.retrying += 1
                    pending.pop(0)
                    continue
                # Accepted: record it now, before anything else can fail
                # (see the windows in the module's docstring).
                pending.pop(0)
                await outbox.finish(row["id"], token, "sent", answered_at(), content, lazy=True)
                done.sent += 1
    except (OSError, aiosmtplib.SMTPException) as exc:
        # No connection, or it broke: the rest waits for the next try.
        _, text = _answer(exc)
        log.warning(
            "SMTP unavailable, e-mails wait", extra={"error": text, "waiting": len(pending), "smtp": repr(config)}
        )
        failed_at = answered_at()
        while pending:
            if await outbox.try_later(pending[0], token, failed_at, text) == "failed":
                done.failed += 1
            else:
                done.retrying += 1
            pending.pop(0)


async def _keep_claim(token: str, clock: Callable[[], datetime]) -> None:
    """Renew the batch's lease while it is being delivered, so a short lease
    only runs out when the worker is gone."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await outbox.extend_claim(token, clock())
        except Exception as exc:  # the database away for a moment: the next beat tries again
            log.warning("outbox claim not renewed", extra={"error": f"{type(exc).__name__}: {exc}"})


async def _give_back(pending: list[dict], token: str, failure: tuple[datetime, str] | None = None) -> None:
    try:
        # Shielded: a second cancellation must not stop it halfway.
        await asyncio.shield(_release_or_retry(list(pending), token, failure))
    except Exception as exc:  # the database is away: the lease gives them back instead
        log.warning(
            "claimed e-mails not given back, they wait for the lease",
            extra={"error": f"{type(exc).__name__}: {exc}", "waiting": len(pending)},
        )
    pending.clear()


async def _release_or_retry(rows: list[dict], token: str, failure: tuple[datetime, str] | None) -> None:
    if failure is None:
        await outbox.release([r["id"] for r in rows], token)
        return
    at, error = failure
    for row in rows:
        await outbox.try_later(row, token, at, error)


async def drain(
    config: SmtpConfig | None,
    clock: Callable[[], datetime] = utcnow,
    *,
    base_url: str,
    limit: int = BATCH,
    max_seconds: float = 50.0,
) -> Delivered:
    """Deliver batch after batch until nothing is due (or `max_seconds` passed,
    so one job never runs for ever)."""
    total = Delivered()
    started = time.monotonic()
    while True:
        done = await deliver_batch(clock(), config, base_url=base_url, limit=limit, clock=clock)
        total.add(done)
        if done.claimed < limit or done.retrying == done.claimed:
            break
        if time.monotonic() - started >= max_seconds:
            total.more = True
            break
    if total.claimed:
        log.info("outbox delivered", extra={f.name: getattr(total, f.name) for f in fields(total)})
    return total
