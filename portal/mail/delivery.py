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

Never lost: a row is claimed with a lease (portal/db.py `claim_outbox`); if the
worker dies before recording an outcome, the lease runs out and the next
worker takes the row again.

The one window where an e-mail can go twice: the server has accepted the
message (DATA answered 250) and the worker dies before its UPDATE to "sent"
commits. The row is then claimed again after the lease and sent again. Each
row is recorded right after its own acceptance, never at the end of the batch,
so the window holds at most one message per worker, and the copy carries the
same Message-ID (`<outbox-ROW@…>`) so mail clients can fold it."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime

import aiosmtplib

from portal.domain import outbox
from portal.domain.clock import utcnow
from portal.domain.notifications_content import render_rows
from portal.mail.smtp import SmtpConfig, build_message

log = logging.getLogger("portal.mail")

BATCH = 100
# Stop taking rows of a batch once this much of the lease is gone, so a slow
# server cannot make a claim outlive its lease while this worker still holds it.
LEASE_SHARE = 0.5


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


async def deliver_batch(now: datetime, config: SmtpConfig | None, *, limit: int = BATCH) -> Delivered:
    token = secrets.token_hex(16)
    rows = await outbox.claim(now, token, limit)
    done = Delivered(claimed=len(rows))
    if not rows:
        return done
    contents = await render_rows(rows, now)
    withdrawn = [row for row in rows if contents[row["id"]].withdrawn]
    for row in withdrawn:
        content = contents[row["id"]]
        await outbox.finish(row["id"], token, "failed", now, content, content.withdrawn)
    done.failed = len(withdrawn)
    rows = [row for row in rows if not contents[row["id"]].withdrawn]
    if config is None:
        for row in rows:
            await outbox.finish(row["id"], token, "captured", now, contents[row["id"]], lazy=True)
        done.captured = len(rows)
        return done

    started = time.monotonic()
    budget = outbox.LEASE.total_seconds() * LEASE_SHARE
    pending = list(rows)
    try:
        async with config.client() as smtp:
            while pending:
                if time.monotonic() - started > budget:
                    await outbox.release([r["id"] for r in pending], token)
                    pending = []
                    break
                row = pending[0]
                content = contents[row["id"]]
                try:
                    message = build_message(config, row, content, now)
                    await smtp.sendmail(config.from_address, [row["to_email"]], message)
                except ValueError as exc:  # an address that cannot be put on the envelope
                    pending.pop(0)
                    await outbox.finish(row["id"], token, "failed", now, content, f"Not a deliverable address: {exc}")
                    done.failed += 1
                    continue
                except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
                    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                        raise
                    pending.pop(0)
                    code, text = _answer(exc)
                    if code is not None and 500 <= code < 600:
                        await outbox.finish(row["id"], token, "failed", now, content, text)
                        done.failed += 1
                    elif await outbox.try_later(row, token, now, text) == "failed":
                        done.failed += 1
                    else:
                        done.retrying += 1
                    continue
                pending.pop(0)
                # Accepted: record it now (see the window in the module's docstring).
                await outbox.finish(row["id"], token, "sent", now, content, lazy=True)
                done.sent += 1
    except (OSError, aiosmtplib.SMTPException) as exc:
        # No connection, or it broke: the rest waits for the next try.
        _, text = _answer(exc)
        log.warning(
            "SMTP unavailable, e-mails wait", extra={"error": text, "waiting": len(pending), "smtp": repr(config)}
        )
        for row in pending:
            if await outbox.try_later(row, token, now, text) == "failed":
                done.failed += 1
            else:
                done.retrying += 1
    return done


async def drain(
    config: SmtpConfig | None,
    clock: Callable[[], datetime] = utcnow,
    *,
    limit: int = BATCH,
    max_seconds: float = 50.0,
) -> Delivered:
    """Deliver batch after batch until nothing is due (or `max_seconds` passed,
    so one job never runs for ever)."""
    total = Delivered()
    started = time.monotonic()
    while True:
        done = await deliver_batch(clock(), config, limit=limit)
        total.add(done)
        if done.claimed < limit or done.retrying == done.claimed:
            break
        if time.monotonic() - started >= max_seconds:
            total.more = True
            break
    if total.claimed:
        log.info("outbox delivered", extra={f.name: getattr(total, f.name) for f in fields(total)})
    return total
