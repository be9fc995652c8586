"""The embedded default (no Redis): the web process itself sweeps at start and
delivers on a timer; and a bad SMTP_URL stops the start with the reason."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta

from portal.mail.smtp import InvalidSmtpUrl
from portal.settings import get_settings
from portal.tables import OutboxEmail
from portal.web.app import create_app
from tests.support import running
from tests.test_mail_sweep import assigned


async def test_a_bad_smtp_url_stops_the_start_with_the_reason():
    app = create_app(dataclasses.replace(get_settings(), smtp_url="smtp://mail.example:25?starttls=perhaps"))
    # Litestar starts inside a task group, which wraps what the lifespan raised.
    with pytest.RaisesGroup(
        pytest.RaisesExc(InvalidSmtpUrl, match="starttls must be yes or no"), flatten_subgroups=True
    ):
        async with running(app):
            pass


async def test_without_redis_the_web_process_sweeps_at_start_and_delivers(tree):
    now = datetime.now(UTC)
    batch = await assigned(tree, now - relativedelta(months=12) + timedelta(hours=30))
    assert now < batch["ends_at"] < now + timedelta(hours=72)
    app = create_app(dataclasses.replace(get_settings(), redis_url=None, smtp_url=None, in_process_jobs=True))
    async with running(app):
        for _ in range(200):  # the timers run on this loop: give them turns until the reminder is through
            row = await OutboxEmail.select().where(OutboxEmail.kind == "expiry_reminder").first()
            if row and row["status"] != "queued":
                break
            await asyncio.sleep(0.05)
    assert row is not None, "the sweep at start queued no reminder"
    assert row["to_email"] == tree.email("north") and row["status"] == "captured"
    assert "ends within 72 hours" in row["subject"] and "Expired Licenses" in row["body"]


async def test_in_process_jobs_can_be_switched_off(tree, monkeypatch):
    monkeypatch.setenv("PORTAL_IN_PROCESS_JOBS", "off")
    settings = get_settings.__wrapped__()  # read again, not the process's cached settings
    assert settings.in_process_jobs is False
    now = datetime.now(UTC)
    await assigned(tree, now - relativedelta(months=12) + timedelta(hours=30))
    async with running(create_app(dataclasses.replace(settings, redis_url=None))):
        await asyncio.sleep(0.2)
    assert await OutboxEmail.count().where(OutboxEmail.kind == "expiry_reminder") == 0
