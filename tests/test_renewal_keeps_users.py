"""A renewal keeps its users, each engine: renewing a batch ("Renew same quantity",
or a renewal order assigned from Requested Orders) gives the new batch to the
people who hold the old one from where it ends, counted once; an order that
renews nothing starts when it is assigned; a renewal run twice renews once; the
dashboard's "Renewed" comes from the renewal, not from an unrelated order."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import timedelta

import pytest

from portal.domain.access import load_actor
from portal.domain.billing import settlement
from portal.domain.billing.renewal import invoice_subscriptions, online
from portal.domain.clock import utcnow
from portal.domain.dashboard import same_quantity, wing_batches
from portal.domain.dashboard.customer_summary import customer_summary
from portal.domain.errors import ValidationFailed
from portal.domain.licences import allocation
from portal.domain.licences.status import licence_status
from portal.domain.notifications_sweep import sweep
from portal.domain.orders import decisions, order_list, requests
from portal.tables import Allocation, LicenceBatch, LicenceOrder, OutboxEmail, User
from tests import test_billing_renewal as billing
from tests.support import PROCESSOR, csrf_of, sign_in
from tests.test_dashboard import NOW, YEAR, actors, batch_ending, learners
from tests.test_dashboard_figures import assert_exact

# Signs the list cursors in these tests (the app derives its own from SECRET_KEY).
SECRET = b"test cursor key"

SOON = NOW + timedelta(days=2)  # "2 of 2 seats end in 2 days"


async def licence_ends(user_ids: list[int]) -> list:
    rows = await User.select(User.id, User.licence_ends_at).where(User.id.is_in(user_ids)).order_by(User.id)
    return [row["licence_ends_at"] for row in rows]


async def assert_one_seat_per_term() -> None:
    """No user holds two seats (not released) of batches ending at the same instant."""
    held = await Allocation.select(Allocation.user, Allocation.batch.ends_at).where(Allocation.released_at.is_null())
    twice = [key for key, n in Counter((r["user"], r["batch.ends_at"]) for r in held).items() if n > 1]
    assert twice == []


async def test_renew_same_quantity_moves_the_holders_to_the_new_batch_from_the_old_end(tree):
    partner, customer = await actors(tree)
    holders = await learners(tree.direct, 2, "kept")
    old = await batch_ending(partner, tree.direct, 2, SOON, holders)
    done = await same_quantity.renew_same_quantity(partner, old["id"], NOW)

    new = done["batch"]
    # No overlapping day paid for, no gap: the new term starts where the old one ends.
    assert (new["starts_at"], new["ends_at"], new["allocated"], new["seats"]) == (SOON, SOON + YEAR, 2, 2)
    assert await licence_ends(holders) == [SOON + YEAR, SOON + YEAR]
    assert await Allocation.count().where(Allocation.batch == new["id"]) == 2
    await assert_one_seat_per_term()
    # Nobody is expiring now, nor expired once the old batch has ended.
    summary = await customer_summary(customer, tree.direct["id"], NOW)
    assert summary["expiring"] == 0
    after = SOON + timedelta(days=1)
    assert {licence_status(end, after) for end in await licence_ends(holders)} == {"active"}
    assert (await customer_summary(customer, tree.direct["id"], after))["expired"] == 0
    for moment in (NOW, after):
        await assert_exact(partner, tree, moment)
    order = await LicenceOrder.select().where(LicenceOrder.id == done["order"]["id"]).first()
    assert order["renews_batch"] == old["id"] and order["status"] == "assigned"
    # Its managers are told the licences run on, not asked to allocate them again.
    (mail,) = await OutboxEmail.select().where(OutboxEmail.dedupe_key.like(f"order_assigned:{order['id']}:%"))
    assert mail["subject"] == f"2 licenses renewed until {SOON + YEAR:%d %B %Y}"
    assert "The 2 users holding those keep their licenses without a gap." in mail["body"]
    assert "Allocate them" not in mail["body"]


async def test_a_renewal_request_assigned_from_requested_orders_continues_the_batch(tree):
    partner, customer = await actors(tree)
    holders = await learners(tree.direct, 3, "req")
    old = await batch_ending(partner, tree.direct, 4, SOON, holders)
    gone = holders[0]
    await allocation.deactivate_user(partner, gone, NOW - timedelta(days=1))  # left: not renewed

    done = await same_quantity.renew_same_quantity(customer, old["id"], NOW)
    assert done["batch"] is None and done["order"]["renews_batch"] == old["id"]
    listed = (await order_list.list_orders(partner, {"status": "requested"}, None, SECRET)).items
    (row,) = [o for o in listed if o["id"] == done["order"]["id"]]
    assert (row["renews_batch"], row["renews_seats"], row["renews_ends_at"]) == (old["id"], 4, SOON)

    later = NOW + timedelta(hours=5)
    preview = await decisions.assign_preview(partner, row["id"], later)
    assert preview.term.said == (
        f"starts when the renewed batch ends, on {SOON:%d %b %Y}, ends {SOON + YEAR:%d %b %Y}, 2 users move"
    )
    batch = await decisions.assign_order(partner, row["id"], later)
    assert (batch["starts_at"], batch["ends_at"], batch["allocated"]) == (SOON, SOON + YEAR, 2)
    assert await licence_ends(holders[1:]) == [SOON + YEAR, SOON + YEAR]
    assert (await licence_ends([gone]))[0] < SOON
    await assert_one_seat_per_term()
    await assert_exact(partner, tree, later)


async def test_a_renewed_batch_sends_no_expiry_mail(tree):
    """Its managers are not told that licences end which run on."""
    partner, _ = await actors(tree)
    old = await batch_ending(partner, tree.direct, 2, SOON, await learners(tree.direct, 2, "mail"))
    await same_quantity.renew_same_quantity(partner, old["id"], NOW)
    for moment in (SOON - timedelta(hours=71), SOON + timedelta(minutes=1)):
        await sweep(moment)
    kinds = ("expiry_reminder", "expiry_notice")
    assert await OutboxEmail.count().where(OutboxEmail.kind.is_in(list(kinds))) == 0


async def test_an_order_that_renews_nothing_starts_when_assigned_and_renews_no_batch(tree):
    """The guides' rule stays for any other order, and its assignment does not
    make a batch ending soon look renewed (it was, before, if assigned after it)."""
    partner, customer = await actors(tree)
    holders = await learners(tree.direct, 2, "other")
    old = await batch_ending(partner, tree.direct, 2, SOON, holders)
    order = await requests.request_order(customer, tree.direct["id"], 5, None, "", NOW)
    preview = await decisions.assign_preview(partner, order["id"], NOW)
    assert preview.term.renewed is None and preview.term.said == f"12 months from now, ends {NOW + YEAR:%d %b %Y}"
    batch = await decisions.assign_order(partner, order["id"], NOW)
    assert (batch["starts_at"], batch["ends_at"], batch["allocated"]) == (NOW, NOW + YEAR, 0)
    assert await licence_ends(holders) == [SOON, SOON]  # nobody moved

    (listed,), _ = await wing_batches.ending_soon(partner, NOW)
    assert listed["id"] == old["id"] and listed["renewed_at"] is None and listed["renewable"]


async def test_the_dashboard_says_renewed_from_the_renewal_itself(tree):
    partner, _ = await actors(tree)
    old = await batch_ending(partner, tree.direct, 2, SOON, await learners(tree.direct, 2, "dash"))
    offer = await same_quantity.renewal_offer(partner, old["id"], NOW)
    assert (offer["term"].starts_at, offer["term"].ends_at, offer["term"].moving) == (SOON, SOON + YEAR, 2)
    await same_quantity.renew_same_quantity(partner, old["id"], NOW)
    (listed,), _ = await wing_batches.ending_soon(partner, NOW)
    assert (listed["renewed_at"], listed["renewed_until"], listed["renewable"]) == (NOW, SOON + YEAR, False)


async def test_a_batch_that_ended_is_renewed_from_its_end(tree):
    """Renewed ten days after it ended: no gap (the new term covers those days), and its users active again."""
    partner, _ = await actors(tree)
    holders = await learners(tree.direct, 2, "late")
    ended = NOW - timedelta(days=10)
    old = await batch_ending(partner, tree.direct, 3, ended, holders)
    done = await same_quantity.renew_same_quantity(partner, old["id"], NOW)
    assert (done["batch"]["starts_at"], done["batch"]["ends_at"]) == (ended, ended + YEAR)
    assert await licence_ends(holders) == [ended + YEAR, ended + YEAR]
    await assert_exact(partner, tree, NOW)


async def test_a_renewal_run_twice_renews_once(tree):
    partner, customer = await actors(tree)
    holders = await learners(tree.direct, 2, "twice")
    old = await batch_ending(partner, tree.direct, 2, SOON, holders)

    async def renew(actor):
        try:
            return await same_quantity.renew_same_quantity(actor, old["id"], NOW)
        except ValidationFailed as refused:
            return refused

    # Three concurrent requests (two tabs, two managers), then a double click. The
    # customer's, if first, is a request the partner's then assigns: one order still.
    results = await asyncio.gather(renew(partner), renew(partner), renew(customer))
    assert len({r["order"]["id"] for r in results if isinstance(r, dict)}) == 1, results
    assert all(re.search("already renewed|already waiting", str(r)) for r in results if not isinstance(r, dict))
    with pytest.raises(ValidationFailed, match="already renewed"):
        await same_quantity.renew_same_quantity(partner, old["id"], NOW)
    renewals = await LicenceOrder.select().where(LicenceOrder.renews_batch == old["id"])
    assert [o["status"] for o in renewals] == ["assigned"]
    assert await LicenceBatch.count().where(LicenceBatch.starts_at == SOON) == 1
    assert await licence_ends(holders) == [SOON + YEAR, SOON + YEAR]
    await assert_one_seat_per_term()


async def test_a_second_renewal_order_of_a_renewed_batch_is_refused_at_assign(tree):
    """Whatever placed it, one batch is renewed once: a waiting renewal request
    is refused at Assign once another order renewed the batch."""
    partner, customer = await actors(tree)
    old = await batch_ending(partner, tree.direct, 2, SOON, await learners(tree.direct, 2, "dup"))
    waiting = await requests.request_order(customer, tree.direct["id"], 2, None, "", NOW, renews_batch=old["id"])
    other = await requests.request_order(customer, tree.direct["id"], 2, None, "", NOW, renews_batch=old["id"])
    await decisions.assign_order(partner, waiting["id"], NOW)
    with pytest.raises(ValidationFailed, match="already renewed"):
        await decisions.assign_order(partner, other["id"], NOW)
    assert await LicenceBatch.count().where(LicenceBatch.starts_at == SOON) == 1


async def test_partner_renewing_assigns_the_waiting_renewal_request(tree):
    partner, customer = await actors(tree)
    old = await batch_ending(partner, tree.direct, 2, SOON, await learners(tree.direct, 2, "wait"))
    requested = await same_quantity.renew_same_quantity(customer, old["id"], NOW)
    (listed,), _ = await wing_batches.ending_soon(partner, NOW)
    assert listed["renewal_requested_at"] == NOW and not listed["renewable"]
    done = await same_quantity.renew_same_quantity(partner, old["id"], NOW)
    assert done["order"]["id"] == requested["order"]["id"] and done["batch"]["allocated"] == 2
    assert await LicenceOrder.count().where(LicenceOrder.renews_batch == old["id"]) == 1


async def test_a_subscriptions_next_term_records_the_batch_it_renews(tree):
    """Paid by the job (online) or by recording a payment (invoice): the next
    term's order renews the term's batch, so the dashboard says Renewed and does
    not offer to renew it a second time."""
    partner, customer = await actors(tree)
    online_sub = await billing.subscribe(tree.direct)
    invoiced_sub = await billing.subscribe(tree.north, method="invoice", card=None)
    # Before: a subscription's term is not renewed by hand (it would be paid twice).
    before = billing.DUE - timedelta(days=1)
    listed = (await wing_batches.ending_soon(partner, before))[0]
    assert {b["id"] for b in listed} == {online_sub["batch"], invoiced_sub["batch"]}
    assert all(b["subscription_term"] and not b["renewable"] for b in listed)
    with pytest.raises(ValidationFailed, match="renews with the subscription"):
        await same_quantity.renew_same_quantity(partner, online_sub["batch"], before)
    assert (await online.renew_due(billing.DUE, processor=PROCESSOR))["renewed"] == 1
    invoice = await invoice_subscriptions.request_invoice(
        await load_actor(tree.managers["north"]["id"], None), invoiced_sub["id"], billing.END - timedelta(days=10)
    )
    await settlement.record_payment(
        partner, invoice["id"], method="bank_transfer", reference="BT-1", now=billing.END - timedelta(days=5)
    )
    for sub in (online_sub, invoiced_sub):
        new = (await billing.batches_of({"id": sub["company"]}))[-1]
        order = await LicenceOrder.select().where(LicenceOrder.id == new["order"]).first()
        assert order["renews_batch"] == sub["batch"]
    listed = (await wing_batches.ending_soon(partner, billing.DUE))[0]
    assert {b["id"] for b in listed} == {online_sub["batch"], invoiced_sub["batch"]}
    assert not any(b["renewable"] for b in listed) and all(b["renewed_at"] for b in listed)


# --- the pages --------------------------------------------------------------------------


async def test_requested_orders_and_assign_say_a_renewal_continues_the_batch(client, tree):
    partner, customer = await actors(tree)
    now = utcnow()
    ends = now + timedelta(days=2)
    old = await batch_ending(partner, tree.direct, 2, ends, await learners(tree.direct, 2, "web"))
    renewal = (await same_quantity.renew_same_quantity(customer, old["id"], now))["order"]
    plain = await requests.request_order(customer, tree.direct["id"], 3, None, "", now)
    await sign_in(client, tree.email("partner"))
    page = await client.get("/licences/orders")
    assert f"renewal of 2 seats ending {ends:%d %b %Y}" in page.text
    token = {"_csrf_token": csrf_of(page.text)}

    said = f"starts when the renewed batch ends, on {ends:%d %b %Y}, ends {ends + YEAR:%d %b %Y}, 2 users move"
    in_row = await client.post(
        f"/licences/orders/{renewal['id']}/assign",
        data=token,
        headers={"HX-Request": "true", "HX-Target": f"order-{renewal['id']}"},
    )
    assert said in " ".join(in_row.text.split())
    no_script = await client.post(f"/licences/orders/{renewal['id']}/assign", data=token)
    assert said in " ".join(no_script.text.split()) and "<html" in no_script.text
    other = await client.post(f"/licences/orders/{plain['id']}/assign", data=token)
    assert "12 months from now" in other.text and "renewed batch" not in other.text

    done = await client.post(f"/licences/orders/{renewal['id']}/assign", data={**token, "confirm": "1"})
    assert done.status_code in (302, 303)
    flashed = await client.get(done.headers["location"])
    assert "2 users moved to it" in flashed.text
    assert await licence_ends(await learners_of(tree.direct, "web")) == [ends + YEAR, ends + YEAR]


async def learners_of(company: dict, prefix: str) -> list[int]:
    rows = (
        await User.select(User.id)
        .where((User.company == company["id"]) & User.email.like(f"{prefix}%"))
        .order_by(User.id)
    )
    return [row["id"] for row in rows]


async def test_renew_same_quantity_page_says_when_the_renewal_starts_and_who_moves(client, tree):
    partner, _ = await actors(tree)
    now = utcnow()
    ends = now + timedelta(days=2)
    await batch_ending(partner, tree.direct, 2, ends, await learners(tree.direct, 2, "pg"))
    old = await LicenceBatch.select().where(LicenceBatch.company == tree.direct["id"]).first()
    await sign_in(client, tree.email("partner"))
    confirm = await client.get(f"/dashboard/batches/{old['id']}/renew?back=/dashboard")
    text = " ".join(confirm.text.split())
    assert (
        f"starts when the renewed batch ends, on {ends:%d %b %Y}, ends {(ends + YEAR):%d %b %Y}, 2 users move" in text
    )
    done = await client.post(
        f"/dashboard/batches/{old['id']}/renew", data={"back": "/dashboard", "_csrf_token": csrf_of(confirm.text)}
    )
    dashboard = await client.get(done.headers["location"])
    assert "2 users moved to it" in dashboard.text
    assert f"Renewed {now:%d %b %Y}, until {(ends + YEAR):%d %b %Y}" in dashboard.text
    assert await licence_ends(await learners_of(tree.direct, "pg")) == [ends + YEAR, ends + YEAR]
    # The Licenses page lists the new batch by when it starts, not as ended, before it starts.
    licences = await client.get(f"/companies/{tree.direct['id']}/licences?tab=active")
    row = re.search(rf"<tr>(?:(?!</tr>).)*{(ends + YEAR):%d %b %Y}(?:(?!</tr>).)*</tr>", licences.text, re.S).group(0)
    assert f"Starts {ends:%d %b %Y}" in row and "Ended" not in row
