"""Reminders the partner sets: on each chosen day before a batch ends its
customer's managers get one e-mail, never twice, never for a batch renewed or
whose term goes on, and a schedule changed midway neither doubles nor drops
one; the settings follow the tree; copies, Reply-To and sender name; the
weekly digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from portal.domain import partner_settings
from portal.domain.access import load_actor
from portal.domain.emails.digest import queue_digests
from portal.domain.errors import ValidationFailed
from portal.domain.notifications_sweep import sweep
from portal.domain.orders import decisions, requests
from portal.mail.delivery import deliver_batch
from portal.tables import OutboxEmail
from tests.factories import T0, add_user
from tests.support import BASE_URL

DAY = timedelta(days=1)


async def assigned(tree, company: str = "north", at: datetime = T0, seats: int = 10) -> dict:
    customer = await load_actor(tree.managers[company]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    order = await requests.request_order(customer, tree.__dict__[company]["id"], seats, None, "", at)
    return await decisions.assign_order(partner, order["id"], at)


async def renew(tree, batch: dict, at: datetime) -> dict:
    customer = await load_actor(tree.managers["north"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    order = await requests.request_order(customer, tree.north["id"], 10, None, "", at, renews_batch=batch["id"])
    return await decisions.assign_order(partner, order["id"], at)


async def set_emails(tree, company: str, days: str, **more) -> partner_settings.PartnerSettings:
    actor = await load_actor(tree.managers[company]["id"], None)
    fields = {"copy_account_managers": False, "reply_to": "", "sender_name": ""} | more
    return await partner_settings.save_emails(actor, tree.__dict__[company]["id"], reminder_days=days, now=T0, **fields)


async def reminders(to: str | None = None) -> list[tuple[str, int]]:
    """(recipient, days) of every reminder queued, in order."""
    query = OutboxEmail.select(OutboxEmail.to_email, OutboxEmail.data).where(OutboxEmail.kind == "expiry_reminder")
    if to:
        query = query.where(OutboxEmail.to_email == to)
    return [(r["to_email"], json.loads(r["data"])["days"]) for r in await query.order_by(OutboxEmail.id)]


async def sweep_hourly(start: datetime, end: datetime) -> None:
    at = start
    while at <= end:
        await sweep(at)
        at += timedelta(hours=6)


async def test_without_settings_the_guides_72_hours_stay_the_default(tree):
    batch = await assigned(tree)
    assert (await partner_settings.for_path(tree.north["path"])).reminder_days == (3,)
    await sweep_hourly(batch["ends_at"] - 10 * DAY, batch["ends_at"] - timedelta(minutes=1))
    assert await reminders() == [(tree.email("north"), 3)]


async def test_each_chosen_day_queues_one_e_mail_per_manager_per_batch_never_twice(tree):
    await add_user(tree.north, "second@north.example")
    await set_emails(tree, "partner", "14, 7, 1")
    first, second = await assigned(tree), await assigned(tree, seats=3)
    ends = first["ends_at"]
    await sweep_hourly(ends - 20 * DAY, ends - timedelta(minutes=1))
    for _ in range(3):  # sweeps repeated, at once or later: nothing more
        await sweep(ends - timedelta(hours=2))
    got = await reminders()
    assert len(got) == 2 * 2 * 3  # managers × batches × days
    for manager in (tree.email("north"), "second@north.example"):
        assert sorted(d for to, d in got if to == manager) == [1, 1, 7, 7, 14, 14]
    rows = await OutboxEmail.select(OutboxEmail.batch).where(OutboxEmail.kind == "expiry_reminder")
    assert {r["batch"] for r in rows} == {first["id"], second["id"]}


async def test_a_sweep_that_was_down_sends_only_the_latest_day_missed(tree):
    await set_emails(tree, "partner", "14, 7, 3")
    batch = await assigned(tree)
    await sweep(batch["ends_at"] - 5 * DAY)  # down through the 14- and 7-day marks
    assert await reminders() == [(tree.email("north"), 7)]
    await sweep(batch["ends_at"] - 4 * DAY)
    await sweep(batch["ends_at"] - 2 * DAY)
    assert await reminders() == [(tree.email("north"), 7), (tree.email("north"), 3)]


async def test_never_for_a_batch_renewed_and_none_after_it_ended(tree):
    await set_emails(tree, "partner", "10, 3")
    batch = await assigned(tree)
    ends = batch["ends_at"]
    await sweep(ends - 9 * DAY)
    assert await reminders() == [(tree.email("north"), 10)]
    await renew(tree, batch, ends - 8 * DAY)  # its next term starts at its end
    await sweep_hourly(ends - 8 * DAY, ends + 2 * DAY)
    assert await reminders() == [(tree.email("north"), 10)]
    notices = await OutboxEmail.count().where(OutboxEmail.kind == "expiry_notice")
    assert notices == 0
    other = await assigned(tree, "direct")
    await sweep(other["ends_at"] + DAY)  # first sweep after it ended: the notice, no reminder
    assert await reminders(tree.email("direct")) == []
    assert await OutboxEmail.count().where(OutboxEmail.kind == "expiry_notice") == 1


async def test_a_reminder_queued_then_renewed_before_it_goes_is_withdrawn(tree):
    batch = await assigned(tree)
    await sweep(batch["ends_at"] - 2 * DAY)
    await renew(tree, batch, batch["ends_at"] - 2 * DAY + timedelta(minutes=1))
    await deliver_batch(batch["ends_at"] - 2 * DAY + timedelta(minutes=2), None, base_url=BASE_URL)
    row = await OutboxEmail.select().where(OutboxEmail.kind == "expiry_reminder").first()
    assert row["status"] == "failed" and "renewed" in row["error"]


@pytest.mark.parametrize(
    ("before", "after", "change_at_days", "expected"),
    [
        # A day added ahead of the one in progress: the stretch it is in already had its e-mail.
        ("7, 3", "10, 3", 5, [7, 3]),
        # A day added after the last one sent: it still comes.
        ("7, 3", "7, 5, 3", 6, [7, 5, 3]),
        # The day in progress moved earlier before its mark: nothing dropped, nothing doubled.
        ("7, 3", "5, 3", 8, [5, 3]),
        # Days removed: the rest come once.
        ("14, 7, 3", "3", 10, [14, 3]),
        # Days moved later after one was sent: each stretch once.
        ("3", "4, 2", 2.5, [3, 2]),
    ],
)
async def test_changing_the_schedule_midway_neither_doubles_nor_drops_one(
    tree, before, after, change_at_days, expected
):
    await set_emails(tree, "partner", before)
    batch = await assigned(tree)
    ends = batch["ends_at"]
    change_at = ends - timedelta(days=change_at_days)
    await sweep_hourly(ends - 20 * DAY, change_at)
    await set_emails(tree, "partner", after)
    await sweep_hourly(change_at + timedelta(hours=1), ends - timedelta(minutes=1))
    assert [d for _, d in await reminders()] == expected


async def test_settings_follow_the_tree_and_a_sub_partner_s_own_win_below_it(tree):
    await set_emails(tree, "partner", "7", sender_name="Acme Renewals")
    assert (await partner_settings.for_path(tree.north["path"])).reminder_days == (7,)
    assert (await partner_settings.for_path(tree.direct["path"])).reminder_days == (7,)
    await set_emails(tree, "sub", "5, 1")
    assert (await partner_settings.for_path(tree.north["path"])).reminder_days == (5, 1)
    assert (await partner_settings.for_path(tree.direct["path"])).reminder_days == (7,)
    # Saving e-mail settings keeps the limits the sub-partner followed, and the reverse.
    sub_actor = await load_actor(tree.managers["sub"]["id"], None)
    await partner_settings.save(sub_actor, tree.sub["id"], max_order_quantity=50, low_seat_threshold=2, now=T0)
    assert (await partner_settings.for_path(tree.north["path"])).reminder_days == (5, 1)
    north, direct = await assigned(tree), await assigned(tree, "direct")
    await sweep(north["ends_at"] - 4 * DAY)
    assert await reminders(tree.email("north")) == [(tree.email("north"), 5)]
    await sweep(direct["ends_at"] - 6 * DAY)
    assert await reminders(tree.email("direct")) == [(tree.email("direct"), 7)]


@pytest.mark.parametrize(
    ("days", "message"),
    [("", "at least one day"), ("3, x", "whole numbers"), ("0", "from 1 to 365"), ("1,2,3,4,5,6,7", "at most 6")],
)
async def test_a_schedule_that_cannot_be_read_is_refused_with_what_to_write(tree, days, message):
    with pytest.raises(ValidationFailed) as refused:
        await set_emails(tree, "partner", days)
    assert message in refused.value.errors["reminder_days"]
    with pytest.raises(ValidationFailed) as refused:
        await set_emails(tree, "partner", "3", reply_to="not an address")
    assert "e-mail address" in refused.value.errors["reply_to"]


async def test_account_managers_get_one_copy_and_the_e_mail_comes_from_the_sender_the_partner_set(tree):
    await set_emails(
        tree, "partner", "3", copy_account_managers=True, reply_to="Renewals@Acme.example", sender_name="Acme Renewals"
    )
    await add_user(tree.north, "second@north.example")
    batch = await assigned(tree)  # North is under the sub-partner: its managers get the copy
    await sweep(batch["ends_at"] - 2 * DAY)
    await sweep(batch["ends_at"] - 1 * DAY)
    rows = await OutboxEmail.select().where(OutboxEmail.kind == "expiry_reminder").order_by(OutboxEmail.id)
    assert sorted(r["to_email"] for r in rows) == sorted(
        [tree.email("north"), "second@north.example", tree.email("sub")]
    )
    await deliver_batch(batch["ends_at"] - 1 * DAY, None, base_url=BASE_URL)
    sent = await OutboxEmail.select().where(OutboxEmail.kind == "expiry_reminder")
    assert {(r["status"], r["sender"], r["reply_to"]) for r in sent} == {
        ("captured", "Acme Renewals", "renewals@acme.example")
    }
    await sweep(batch["ends_at"] + timedelta(hours=1))
    notices = await OutboxEmail.select(OutboxEmail.to_email).where(OutboxEmail.kind == "expiry_notice")
    assert tree.email("sub") in {r["to_email"] for r in notices}


async def test_the_sender_is_read_when_the_e_mail_goes_not_when_it_was_queued(tree):
    batch = await assigned(tree)
    await set_emails(tree, "partner", "3", sender_name="Acme Renewals")
    row = await OutboxEmail.select().where(OutboxEmail.kind == "order_assigned").first()
    await deliver_batch(row["created_at"], None, base_url=BASE_URL)
    sent = await OutboxEmail.select().where(OutboxEmail.id == row["id"]).first()
    assert sent["sender"] == "Acme Renewals" and "Acme Renewals" in sent["html"]
    assert batch["id"]


# --- The weekly digest ------------------------------------------------------------

MONDAY = datetime(2026, 12, 7, 7, 30, tzinfo=UTC)


async def test_the_weekly_digest_goes_once_a_week_to_each_partner_s_managers_with_what_needs_them(tree):
    ending = await assigned(tree, at=MONDAY - timedelta(days=365) + 10 * DAY)  # ends in 10 days
    lapsed = await assigned(tree, "direct", at=MONDAY - timedelta(days=365) - 5 * DAY)  # ended 5 days ago
    customer = await load_actor(tree.managers["north"]["id"], None)
    await requests.request_order(customer, tree.north["id"], 4, None, "", MONDAY - DAY)
    assert await queue_digests(MONDAY - timedelta(hours=1)) == 0  # Monday 06:30: not yet
    written = await queue_digests(MONDAY)
    rows = await OutboxEmail.select().where(OutboxEmail.kind == "weekly_digest").order_by(OutboxEmail.id)
    # The partner sees North (under its sub-partner) and Direct; the sub-partner only North.
    assert written == 2 and [r["to_email"] for r in rows] == [tree.email("partner"), tree.email("sub")]
    top = json.loads(rows[0]["data"])
    assert [e["company"] for e in top["ending"]] == ["North Customer"]
    assert [e["company"] for e in top["lapsed"]] == ["Direct Customer"]
    assert [(e["company"], e["quantity"]) for e in top["waiting"]] == [("North Customer", 4)]
    assert top["failed"] == []
    assert rows[0]["subject"] == "This week at Acme MSP: 1 ending, 1 not renewed, 0 failed charges, 1 orders waiting"
    sub = json.loads(rows[1]["data"])
    assert [e["company"] for e in sub["lapsed"]] == [] and len(sub["ending"]) == 1
    for later in (MONDAY + timedelta(hours=1), MONDAY + 3 * DAY):
        assert await queue_digests(later) == 0
    await deliver_batch(MONDAY + timedelta(minutes=1), None, base_url=BASE_URL)
    sent = await OutboxEmail.select().where(OutboxEmail.id == rows[0]["id"]).first()
    assert sent["status"] == "captured"
    assert (
        f"/companies/{tree.north['id']}/licences" in sent["html"]
        and "/licences/orders?status=requested" in sent["body"]
    )
    assert await queue_digests(MONDAY + 7 * DAY) == 2  # the next week
    assert ending["id"] and lapsed["id"]


async def test_a_partner_manager_who_switched_the_digest_off_gets_none_and_the_others_still_do(tree):
    from portal.domain import notifications
    from portal.tables import User

    await assigned(tree, at=MONDAY - timedelta(days=365) + 10 * DAY)  # ends in 10 days
    second = await add_user(tree.partner, "second@partner.example")
    partner = await load_actor(tree.managers["partner"]["id"], None)
    assert await notifications.set_digest(partner, False, MONDAY - DAY)
    assert not await notifications.set_digest(partner, False, MONDAY - DAY)  # nothing changes twice
    sub = await load_actor(tree.managers["sub"]["id"], None)
    await notifications.set_digest(sub, False, MONDAY - DAY)
    # A customer manager gets no digest and has nothing to switch.
    customer = await load_actor(tree.managers["north"]["id"], None)
    assert not await notifications.set_digest(customer, False, MONDAY - DAY)
    assert (await User.select(User.digest_off).where(User.id == customer.user_id).first())["digest_off"] is False

    assert await queue_digests(MONDAY) == 1
    rows = await OutboxEmail.select().where(OutboxEmail.kind == "weekly_digest")
    assert [r["to_email"] for r in rows] == [second["email"]]

    await notifications.set_digest(partner, True, MONDAY + DAY)
    assert await queue_digests(MONDAY + 7 * DAY) == 2
