"""A paid term's seats in the licence model: an assigned order and batch, the
seat holders of the previous batch carried over set-based, the licence model's
invariants kept (no batch over its seats, `allocated`, licence ends, tallies)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal import db
from portal.domain.access import load_actor
from portal.domain.billing import money
from portal.domain.billing.provisioning import carry_over, provision_term
from portal.domain.licences import allocation, batches, tabs
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions, requests
from portal.domain.orders.decisions import InvalidTransition
from portal.tables import Allocation, LicenceBatch, LicenceOrder, User
from tests.factories import add_user
from tests.support import tally_drift
from tests.test_billing_subscriptions import NOW, actors

END = money.term_end(NOW)


def subscription_of(company: dict) -> dict:
    return {"id": 0, "company": company["id"], "company_path": company["path"]}


async def holders(tree, names: list[str]) -> list[dict]:
    return [await add_user(tree.north, f"{name}@north.example", role="learner", name=name.title()) for name in names]


async def test_a_term_is_one_assigned_order_and_batch(tree):
    batch = await provision_term(subscription_of(tree.north), seats=12, starts_at=NOW, ends_at=END, now=NOW)
    assert (batch["seats"], batch["allocated"], batch["starts_at"], batch["ends_at"]) == (12, 0, NOW, END)
    order = await LicenceOrder.select().where(LicenceOrder.id == batch["order"]).first()
    assert (order["status"], order["quantity"], order["company"], order["decided_at"]) == (
        "assigned",
        12,
        tree.north["id"],
        NOW,
    )
    customer, _ = await actors(tree)
    shown = await batches.batches(customer, tree.north["id"], NOW)
    assert [(b["id"], b["free"], b["running"]) for b in shown] == [(batch["id"], 12, True)]


async def test_holders_are_carried_over_first_allocated_first_up_to_the_seats_and_the_tallies_follow(tree):
    customer, _ = await actors(tree)
    first = await provision_term(subscription_of(tree.north), seats=5, starts_at=NOW, ends_at=END, now=NOW)
    people = await holders(tree, ["dana", "abel", "cora", "bob", "eve"])
    dana, abel, cora, bob, eve = people
    # Allocated in this order: Dana and Eve, then Bob, then Abel and Cora.
    for group in ((dana, eve), (bob,), (abel, cora)):
        selection = Selection(user_ids=tuple(p["id"] for p in group))
        await allocation.allocate(customer, tree.north["id"], selection, NOW, batch_id=first["id"])
    # Eve leaves (her seat is released); Cora is covered past the next term by another batch.
    await allocation.deactivate_user(customer, eve["id"], NOW + timedelta(days=10))
    long = await provision_term(
        subscription_of(tree.north), seats=1, starts_at=NOW, ends_at=END + timedelta(days=800), now=NOW
    )
    await User.update({User.licence_ends_at: long["ends_at"]}).where(User.id == cora["id"])
    await Allocation.insert(
        Allocation(
            batch=long["id"],
            user=cora["id"],
            allocated_at=NOW,
            starts_at=NOW,
            ends_at=long["ends_at"],
        )
    )
    await LicenceBatch.update({LicenceBatch.allocated: 1}).where(LicenceBatch.id == long["id"])

    next_end = money.term_end(END)
    batch = await provision_term(
        subscription_of(tree.north),
        seats=2,
        starts_at=END,
        ends_at=next_end,
        now=END - timedelta(days=3),
        carry_holders=True,
    )
    # Dana, Bob and Abel still hold seats ending at END; two seats: the first two allocated.
    seats = await Allocation.select(Allocation.user, Allocation.starts_at, Allocation.ends_at).where(
        Allocation.batch == batch["id"]
    )
    assert sorted((s["user"], s["starts_at"], s["ends_at"]) for s in seats) == sorted(
        [(dana["id"], END, next_end), (bob["id"], END, next_end)]
    )
    assert batch["allocated"] == 2
    stored = await LicenceBatch.select(LicenceBatch.allocated).where(LicenceBatch.id == batch["id"]).first()
    assert stored["allocated"] == 2
    ends = {u["id"]: u["licence_ends_at"] for u in await User.select(User.id, User.licence_ends_at)}
    assert (ends[dana["id"]], ends[bob["id"]], ends[abel["id"]]) == (next_end, next_end, END)
    assert ends[cora["id"]] == long["ends_at"]
    assert (await LicenceBatch.select(LicenceBatch.allocated).where(LicenceBatch.id == first["id"]).first())[
        "allocated"
    ] == 4  # the old batch keeps its holders until it ends
    counts = await tabs.tab_counts(customer, tree.north["id"], END + timedelta(days=1))
    # After the old end: Dana, Bob (carried), Cora (long batch) active; Abel expired; the manager never licensed.
    assert (counts["active"], counts["expired"], counts["unlicensed"]) == (3, 1, 1)
    assert await tally_drift() == []
    # No batch holds more seats than it has.
    for row in await LicenceBatch.select(LicenceBatch.id, LicenceBatch.seats):
        assert await Allocation.count().where(Allocation.batch == row["id"]) <= row["seats"]


async def test_carry_over_takes_many_next_terms_at_once_each_from_its_own_company(tree):
    """The renewal job's chunk: one call for several companies' next terms."""
    customer, _ = await actors(tree)
    north = await provision_term(subscription_of(tree.north), seats=2, starts_at=NOW, ends_at=END, now=NOW)
    (ann,) = await holders(tree, ["ann"])
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(ann["id"],)), NOW, batch_id=north["id"])
    direct = await provision_term(subscription_of(tree.direct), seats=2, starts_at=NOW, ends_at=END, now=NOW)
    ben = await add_user(tree.direct, "ben@direct.example", role="learner", name="Ben")
    direct_manager = await load_actor(tree.managers["direct"]["id"], None)
    assert direct_manager is not None
    await allocation.allocate(
        direct_manager, tree.direct["id"], Selection(user_ids=(ben["id"],)), NOW, batch_id=direct["id"]
    )
    next_end = money.term_end(END)
    later = END - timedelta(days=1)
    async with db.write_transaction():
        new_north = await provision_term(
            subscription_of(tree.north), seats=3, starts_at=END, ends_at=next_end, now=later
        )
        new_direct = await provision_term(
            subscription_of(tree.direct), seats=1, starts_at=END, ends_at=next_end, now=later
        )
        held = await carry_over([new_north["id"], new_direct["id"]], later)
    assert held == {new_north["id"]: 1, new_direct["id"]: 1}
    seats = await Allocation.select(Allocation.batch, Allocation.user).where(
        Allocation.batch.is_in([new_north["id"], new_direct["id"]])
    )
    assert sorted((s["batch"], s["user"]) for s in seats) == sorted(
        [(new_north["id"], ann["id"]), (new_direct["id"], ben["id"])]
    )
    assert await tally_drift() == []


async def test_a_requested_order_is_assigned_once(tree):
    customer, _ = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], 3, None, "", NOW)
    later = NOW + timedelta(days=4)
    batch = await provision_term(
        subscription_of(tree.north), seats=7, starts_at=later, ends_at=END, now=later, order_id=order["id"]
    )
    row = await LicenceOrder.select().where(LicenceOrder.id == order["id"]).first()
    assert (row["status"], row["quantity"], batch["order"], batch["seats"]) == ("assigned", 7, order["id"], 7)
    with pytest.raises(InvalidTransition):
        await provision_term(
            subscription_of(tree.north), seats=7, starts_at=later, ends_at=END, now=later, order_id=order["id"]
        )
    assert await LicenceBatch.count() == 1


async def test_a_paid_term_ends_a_running_trial_and_a_batch_needs_a_seat(tree):
    _, partner = await actors(tree)
    trial = await decisions.start_trial(partner, tree.north["id"], 5, NOW - timedelta(days=3))
    await provision_term(subscription_of(tree.north), seats=3, starts_at=NOW, ends_at=END, now=NOW)
    ended = await LicenceBatch.select(LicenceBatch.ends_at).where(LicenceBatch.id == trial["id"]).first()
    assert ended["ends_at"] == NOW
    with pytest.raises(ValueError):
        await provision_term(subscription_of(tree.north), seats=0, starts_at=NOW, ends_at=END, now=NOW)
