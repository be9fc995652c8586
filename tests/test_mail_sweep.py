"""The expiry sweep with a movable clock: a reminder 72 hours
before a batch ends and a notice when it has ended, for each of the customer's
managers, exactly once, whatever the number of sweeps, also when they were
down when the mark passed. Then the same through real arq workers on Redis."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker
from dateutil.relativedelta import relativedelta

from portal.domain.access import load_actor
from portal.domain.billing.payments import TestProcessor
from portal.domain.emails.content import render_rows
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.notifications_sweep import sweep
from portal.domain.orders import decisions, requests
from portal.jobs import mail as mail_jobs
from portal.mail.delivery import deliver_batch
from portal.services import Services
from portal.tables import Company, LicenceBatch, OutboxEmail, User
from portal.tables.billing import Subscription
from tests.factories import T0, add_user
from tests.support import BASE_URL
from tests.test_mail_delivery import SmtpServer

REDIS_URL = os.environ["PORTAL_TEST_REDIS"]


async def managers(tree) -> None:
    """North Customer's managers: two who get reminders, one who switched them off."""
    await add_user(tree.north, "second@north.example")
    quiet = await add_user(tree.north, "quiet@north.example")
    await User.update({User.reminders_off: True}).where(User.id == quiet["id"])


async def assigned(tree, at: datetime, seats: int = 10) -> dict:
    customer = await load_actor(tree.managers["north"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    order = await requests.request_order(customer, tree.north["id"], seats, None, "", at)
    return await decisions.assign_order(partner, order["id"], at)


async def outbox(kind: str | None = None) -> list[tuple[str, str]]:
    query = OutboxEmail.select(OutboxEmail.kind, OutboxEmail.to_email).where(
        OutboxEmail.kind.is_in(["expiry_reminder", "expiry_notice", "trial_reminder", "trial_notice"])
    )
    if kind:
        query = query.where(OutboxEmail.kind == kind)
    return sorted((r["kind"], r["to_email"]) for r in await query)


def both(kind: str, tree) -> list[tuple[str, str]]:
    return sorted([(kind, tree.email("north")), (kind, "second@north.example")])


async def test_73_hours_before_nothing_71_hours_before_one_reminder_per_manager(tree):
    await managers(tree)
    batch = await assigned(tree, T0)
    ends = batch["ends_at"]
    assert await sweep(ends - timedelta(hours=73)) == dict.fromkeys(
        ["expiry_reminder", "expiry_notice", "trial_reminder", "trial_notice"], 0
    )
    assert await outbox() == []
    written = await sweep(ends - timedelta(hours=71))
    assert written["expiry_reminder"] == 2
    assert await outbox() == both("expiry_reminder", tree)  # not the manager who opted out
    for hours in (70, 1):  # later sweeps, still before the end: nothing more
        assert sum((await sweep(ends - timedelta(hours=hours))).values()) == 0
    await sweep(ends + timedelta(minutes=1))
    assert await outbox("expiry_notice") == both("expiry_notice", tree)
    await sweep(ends + timedelta(hours=5))
    assert len(await outbox()) == 4


async def test_a_term_that_goes_on_is_not_said_to_end(tree):
    """An online subscription renewing itself gets no "ends within 72 hours"; once
    its next term starts at the old end, no "has ended" either. Cancelled, it does."""
    batch = await assigned(tree, T0)
    ends = batch["ends_at"]
    subscription = (
        await Subscription.insert(
            Subscription(
                company=tree.north["id"],
                company_path=tree.north["path"],
                partner=tree.north["parent"],
                tier="pro",
                method="online",
                status="active",
                auto_renew=True,
                term_start=batch["starts_at"],
                term_end=ends,
                batch=batch["id"],
            )
        ).returning(Subscription.id)
    )[0]
    await sweep(ends - timedelta(hours=71))
    assert await outbox() == []

    # Renewed: the next term's batch starts where this one ends.
    await assigned(tree, T0 + timedelta(days=1))
    await LicenceBatch.update(
        {LicenceBatch.starts_at: ends, LicenceBatch.ends_at: ends + relativedelta(months=12)}
    ).where(LicenceBatch.id != batch["id"])
    await Subscription.update({Subscription.term_end: ends + relativedelta(months=12)}).where(
        Subscription.id == subscription["id"]
    )
    await sweep(ends + timedelta(minutes=1))
    assert await outbox() == []

    # A cancelled one, with no next term: both e-mails, as for any batch.
    await LicenceBatch.delete().where(LicenceBatch.id != batch["id"])
    await Subscription.update({Subscription.auto_renew: False, Subscription.term_end: ends}).where(
        Subscription.id == subscription["id"]
    )
    await sweep(ends - timedelta(hours=2))
    await sweep(ends + timedelta(minutes=1))
    assert await outbox() == [("expiry_notice", tree.email("north")), ("expiry_reminder", tree.email("north"))]


async def test_ended_yesterday_while_the_sweep_was_down_sends_the_notice_only(tree):
    await managers(tree)
    batch = await assigned(tree, T0)
    await sweep(batch["ends_at"] + timedelta(days=1))
    assert await outbox() == both("expiry_notice", tree)  # never "72 hours left" after the end


async def test_down_when_the_72_hour_mark_passed_the_reminder_still_goes_before_the_end(tree):
    batch = await assigned(tree, T0)
    await sweep(batch["ends_at"] - timedelta(hours=2))
    assert await outbox() == [("expiry_reminder", tree.email("north"))]


async def test_batches_that_ended_long_ago_are_not_mailed_about(tree):
    batch = await assigned(tree, T0)
    await sweep(batch["ends_at"] + timedelta(days=8))
    assert await outbox() == []


async def test_sweeps_running_at_once_queue_each_email_once(tree):
    await managers(tree)
    first = await assigned(tree, T0)
    await assigned(tree, T0 + timedelta(hours=3))
    now = first["ends_at"] - timedelta(hours=60)
    await asyncio.gather(*(sweep(now) for _ in range(6)))
    assert len(await outbox("expiry_reminder")) == 4  # two batches × two managers


async def test_a_trial_ending_gets_upgrade_now_to_request_licenses(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    trial = await decisions.start_trial(partner, tree.north["id"], 5, T0)
    await sweep(trial["ends_at"] - timedelta(hours=48))
    assert await outbox() == [("trial_reminder", tree.email("north"))]
    row = await OutboxEmail.select().where(OutboxEmail.kind == "trial_reminder").first()
    content = (await render_rows([row], base_url=BASE_URL))[row["id"]]
    assert "Upgrade Now" in content.html and "Upgrade Now" in content.text
    assert f"/companies/{tree.north['id']}/licences/orders/new" in content.text
    assert "free trial" in content.subject.lower()
    await sweep(trial["ends_at"] + timedelta(hours=1))
    assert await outbox("trial_notice") == [("trial_notice", tree.email("north"))]


async def test_the_reminder_names_product_seats_users_losing_access_and_end_in_local_time(tree):
    await Company.update({Company.time_zone: "Europe/Berlin"}).where(Company.id == tree.north["id"])
    customer = await load_actor(tree.managers["north"]["id"], None)
    batch = await assigned(tree, datetime(2026, 3, 10, 14, 30, tzinfo=UTC), seats=12)
    learners = [(await add_user(tree.north, f"l{i}@north.example", role="learner"))["id"] for i in range(3)]
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=tuple(learners)), T0 + timedelta(days=60))
    await sweep(batch["ends_at"] - timedelta(hours=71))
    row = await OutboxEmail.select().where(OutboxEmail.kind == "expiry_reminder").first()
    content = (await render_rows([row], base_url=BASE_URL))[row["id"]]
    # The subject too is made when it goes, from the kind's registry entry.
    assert content.subject == "Security Awareness Training — Premium for North Customer ends within 72 hours"
    for text in (content.text, content.html):
        assert "Security Awareness Training — Premium" in text
        assert "Seats: 12" in text or ">12<" in text
        assert "Users losing access: 3" in text or ">3<" in text
        assert "Wednesday 10 March 2027, 15:30 (Europe/Berlin)" in text  # 14:30 UTC is 15:30 in Berlin in March
        assert f"/companies/{tree.north['id']}/licences?tab=expired" in text
    assert "Expired Licenses" in content.html and "Request Licenses" in content.html
    # Captured, it keeps the text it had, readable in the portal.
    await deliver_batch(row["created_at"], None, base_url=BASE_URL)
    kept = await OutboxEmail.select().where(OutboxEmail.id == row["id"]).first()
    assert kept["status"] == "captured" and "Users losing access: 3" in kept["body"]


# --- Through arq, on Redis ------------------------------------------------------


async def run_workers(n: int = 2) -> None:
    """`n` burst workers at once on the same queue, as separate worker processes would."""
    workers = [
        Worker(
            functions=mail_jobs.MAIL_FUNCTIONS,
            redis_settings=RedisSettings.from_dsn(REDIS_URL),
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
            max_tries=3,
            ctx={"services": Services(TestProcessor(), base_url=BASE_URL)},  # as a worker's start-up puts there
        )
        for _ in range(n)
    ]
    try:
        await asyncio.gather(*(w.main() for w in workers))
    finally:
        await asyncio.gather(*(w.close() for w in workers))


@pytest.mark.redis
async def test_two_arq_workers_sweeping_at_once_and_a_retried_job_queue_one_email_each(tree, monkeypatch):
    await managers(tree)
    now = datetime.now(UTC)
    soon = await assigned(tree, now - relativedelta(months=12) + timedelta(hours=48))  # ends in 48 h
    ended = await assigned(tree, now - relativedelta(months=12) - timedelta(hours=5))  # ended 5 h ago
    assert soon["ends_at"] > now > ended["ends_at"]
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    await pool.flushdb()
    for job_id in ("sweep:a", "sweep:b", "sweep:retry", "sweep:c"):
        await pool.enqueue_job("sweep_expiry", _job_id=job_id)
    await run_workers(2)
    assert await outbox() == sorted(both("expiry_reminder", tree) + both("expiry_notice", tree))

    # Then the workers deliver them over SMTP, each once, whichever worker takes which job.
    server = SmtpServer()
    server.start()
    monkeypatch.setattr(mail_jobs, "smtp_config", lambda: server.config)
    try:
        for job_id in ("deliver:a", "deliver:b", "deliver:c"):
            await pool.enqueue_job("deliver_outbox", _job_id=job_id)
        await run_workers(2)
    finally:
        server.stop()
        await pool.aclose()
    reminders = [m for m in server.sink.messages if "72 hours" in m["Subject"] or "has ended" in m["Subject"]]
    assert sorted(m["To"] for m in reminders) == sorted(
        [tree.email("north"), tree.email("north"), "second@north.example", "second@north.example"]
    )
    assert len(server.sink.messages) == await OutboxEmail.count()  # the order e-mails too, each once
    assert {
        r["status"] for r in await OutboxEmail.select(OutboxEmail.status).where(OutboxEmail.batch.is_not_null())
    } == {"sent"}


async def test_a_reminder_still_queued_when_the_batch_ends_is_withdrawn_not_sent(tree):
    """Queued in time, but delivery was down until after the end: "72 hours left"
    would be wrong by then; the notice goes instead."""
    batch = await assigned(tree, T0)
    ends = batch["ends_at"]
    await sweep(ends - timedelta(hours=71))
    await sweep(ends + timedelta(hours=1))
    server = SmtpServer()
    server.start()
    try:
        done = await deliver_batch(ends + timedelta(hours=1), server.config, base_url=BASE_URL)
    finally:
        server.stop()
    assert done.failed == 1
    expiry = [m["Subject"] for m in server.sink.messages if "Premium for" in m["Subject"]]
    assert expiry == ["Security Awareness Training — Premium for North Customer has ended"]
    reminder = await OutboxEmail.select().where(OutboxEmail.kind == "expiry_reminder").first()
    assert reminder["status"] == "failed" and reminder["error"].startswith("Not sent: the licenses had ended")
