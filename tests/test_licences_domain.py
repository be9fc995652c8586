"""The guides' licence rules, on the domain functions, each engine."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from portal import db
from portal.domain import catalogue
from portal.domain.access import load_actor
from portal.domain.errors import DomainError, NotFound, ValidationFailed
from portal.domain.licences import allocation, history, tabs
from portal.domain.licences.allocation import Selection
from portal.domain.licences.status import licence_status
from portal.domain.orders import decisions, order_list, requests
from portal.tables import Allocation, AuditEntry, LicenceBatch, LicenceOrder, OutboxEmail, User
from tests.factories import T0, add_user

# Signs the list cursors in these tests (the app derives its own from SECRET_KEY).
SECRET = b"test cursor key"


async def actors(tree):
    return (
        await load_actor(tree.managers["north"]["id"], None),
        await load_actor(tree.managers["partner"]["id"], None),
    )


async def learners(company: dict, n: int, prefix: str = "learner") -> list[int]:
    return [(await add_user(company, f"{prefix}{i}@{company['id']}.example", role="learner"))["id"] for i in range(n)]


async def assigned_batch(tree, seats: int, at: datetime) -> dict:
    customer, partner = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], seats, None, "", at)
    return await decisions.assign_order(partner, order["id"], at)


async def test_request_emails_the_account_managers_and_assign_the_customer(tree):
    customer, partner = await actors(tree)
    await add_user(tree.sub, "second@sub.example")
    order = await requests.request_order(customer, tree.north["id"], 25, None, "PO-7", T0)
    to = {r["to_email"] for r in await OutboxEmail.select().where(OutboxEmail.kind == "order_requested")}
    assert to == {tree.email("sub"), "second@sub.example"}  # the nearest partner above: the sub-partner
    await decisions.assign_order(partner, order["id"], T0 + timedelta(days=1))
    to = {r["to_email"] for r in await OutboxEmail.select().where(OutboxEmail.kind == "order_assigned")}
    assert to == {tree.email("north")}


async def test_countdown_starts_at_assignment_not_allocation(tree):
    customer, _ = await actors(tree)
    assigned_at = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    batch = await assigned_batch(tree, 5, assigned_at)
    assert batch["starts_at"] == assigned_at and batch["ends_at"] == datetime(2027, 3, 10, 14, 30, tzinfo=UTC)
    (learner,) = await learners(tree.north, 1)
    day_300 = assigned_at + timedelta(days=300)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(learner,)), day_300)
    seat = await Allocation.select().where(Allocation.user == learner).first()
    assert seat["allocated_at"] == day_300 and seat["ends_at"] == batch["ends_at"]


async def test_29_february_plus_12_months_is_28_february(tree):
    batch = await assigned_batch(tree, 1, datetime(2028, 2, 29, 9, 0, tzinfo=UTC))
    assert batch["ends_at"] == datetime(2029, 2, 28, 9, 0, tzinfo=UTC)


async def test_every_seat_of_a_batch_expires_at_once_and_batches_end_apart(tree):
    customer, _ = await actors(tree)
    early = await assigned_batch(tree, 3, T0)
    late = await assigned_batch(tree, 2, T0 + timedelta(days=40))
    first, second = await learners(tree.north, 3, "a"), await learners(tree.north, 2, "b")
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=tuple(first)), T0, batch_id=early["id"])
    await allocation.allocate(
        customer, tree.north["id"], Selection(user_ids=tuple(second)), T0 + timedelta(days=41), batch_id=late["id"]
    )
    # The manager holds a seat too and expires with the learners of that batch.
    ends = early["ends_at"]
    for at, expired in [(ends - timedelta(seconds=1), 0), (ends, 3), (late["ends_at"], 5)]:
        counts = await tabs.tab_counts(customer, tree.north["id"], at)
        assert counts["expired"] == expired, at
    statuses = {
        licence_status(u["licence_ends_at"], ends - timedelta(hours=71))
        for u in await User.select().where(User.id.is_in(first))
    }
    assert statuses == {"expiring"}


async def test_select_all_takes_every_matching_user_across_pages(tree):
    customer, _ = await actors(tree)
    await assigned_batch(tree, 100, T0)
    await learners(tree.north, 60)
    counts = await tabs.tab_counts(customer, tree.north["id"], T0)
    assert counts["unlicensed"] == 61  # 60 learners and the manager
    result = await allocation.allocate(
        customer, tree.north["id"], Selection(select_all_tab="unlicensed", q="learner"), T0
    )
    assert result.renewed == 60
    assert (await tabs.tab_counts(customer, tree.north["id"], T0))["active"] == 60


async def test_not_enough_seats_allocates_nothing_unless_asked_for_what_is_free(tree):
    customer, _ = await actors(tree)
    batch = await assigned_batch(tree, 4, T0)
    ids = tuple(await learners(tree.north, 6))
    with pytest.raises(allocation.NotEnoughSeats) as refused:
        await allocation.allocate(customer, tree.north["id"], Selection(user_ids=ids), T0)
    assert (refused.value.free, refused.value.selected) == (4, 6)
    assert await Allocation.count() == 0
    result = await allocation.allocate(customer, tree.north["id"], Selection(user_ids=ids), T0, up_to_free=True)
    assert result.renewed == 4
    assert (await LicenceBatch.select().where(LicenceBatch.id == batch["id"]).first())["allocated"] == 4


async def test_no_batch_ever_holds_more_allocations_than_seats_under_concurrency(tree):
    customer, _ = await actors(tree)
    batch = await assigned_batch(tree, 10, T0)
    ids = await learners(tree.north, 50)

    async def one(user_id: int):
        try:
            return await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(user_id,)), T0)
        except allocation.NotEnoughSeats:
            return None

    results = await asyncio.gather(*(one(i) for i in ids))
    assert sum(1 for r in results if r) == 10
    assert await Allocation.count().where(Allocation.batch == batch["id"]) == 10
    assert (await LicenceBatch.select().where(LicenceBatch.id == batch["id"]).first())["allocated"] == 10


async def test_assigning_twice_concurrently_creates_one_batch(tree):
    customer, partner = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], 5, None, "", T0)

    async def assign():
        try:
            return await decisions.assign_order(partner, order["id"], T0)
        except decisions.InvalidTransition:
            return None

    results = await asyncio.gather(*(assign() for _ in range(5)))
    assert sum(1 for r in results if r) == 1
    assert await LicenceBatch.count() == 1
    assert await OutboxEmail.count().where(OutboxEmail.kind == "order_assigned") == 1


async def test_early_renewal_covers_the_time_after_the_current_seat(tree):
    customer, _ = await actors(tree)
    old = await assigned_batch(tree, 1, T0)
    (learner,) = await learners(tree.north, 1)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(learner,)), T0)
    renew_at = old["ends_at"] - timedelta(days=30)
    new = await assigned_batch(tree, 1, renew_at)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(learner,)), renew_at, batch_id=new["id"])
    seats = await Allocation.select().where(Allocation.user == learner).order_by(Allocation.id)
    assert seats[1]["starts_at"] == old["ends_at"] and seats[1]["ends_at"] == new["ends_at"]
    # Allocating the same batch again gives nothing: the seat already runs to its end.
    again = await allocation.allocate(
        customer, tree.north["id"], Selection(user_ids=(learner,)), renew_at, batch_id=new["id"]
    )
    assert again.renewed == 0 and again.already_covered == 1


async def test_deactivating_a_learner_frees_the_seat_for_another(tree):
    customer, _ = await actors(tree)
    batch = await assigned_batch(tree, 1, T0)
    leaver, newcomer = await learners(tree.north, 2)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(leaver,)), T0)
    later = T0 + timedelta(days=100)
    assert await allocation.deactivate_user(customer, leaver, later) == 1
    result = await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(newcomer,)), later)
    assert result.renewed == 1 and result.ends_at == batch["ends_at"]


async def test_another_tenants_orders_and_users_are_not_found(tree):
    customer, partner = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], 1, None, "", T0)
    outsider = await load_actor(tree.managers["other"]["id"], None)
    with pytest.raises(NotFound):
        await decisions.assign_order(outsider, order["id"], T0)
    with pytest.raises(NotFound):
        await history.history(outsider, tree.managers["north"]["id"])
    assert (await LicenceOrder.select().first())["status"] == "requested"


async def test_a_trial_ends_by_itself_and_a_paid_batch_upgrades_it(tree):
    customer, partner = await actors(tree)
    (learner,) = await learners(tree.north, 1)
    trial = await decisions.start_trial(partner, tree.north["id"], 5, T0)
    assert trial["ends_at"] == T0 + timedelta(days=30)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(learner,)), T0)
    assert (await tabs.tab_counts(customer, tree.north["id"], T0 + timedelta(days=30)))["expired"] == 1

    upgrade_at = T0 + timedelta(days=10)
    paid = await assigned_batch(tree, 5, upgrade_at)
    ended = await LicenceBatch.select().where(LicenceBatch.id == trial["id"]).first()
    assert ended["ends_at"] == upgrade_at  # the trial stops when the paid licences arrive
    assert (await tabs.tab_counts(customer, tree.north["id"], upgrade_at))["expired"] == 1
    result = await allocation.allocate(customer, tree.north["id"], Selection(select_all_tab="expired"), upgrade_at)
    assert result.renewed == 1 and result.ends_at == paid["ends_at"]
    with pytest.raises(ValidationFailed):
        await decisions.start_trial(partner, tree.north["id"], 5, upgrade_at)


async def test_customer_cancels_a_request_but_not_a_decided_order(tree):
    customer, partner = await actors(tree)
    waiting = await requests.request_order(customer, tree.north["id"], 3, None, "", T0)
    await decisions.cancel_order(customer, waiting["id"], T0)
    assert (await LicenceOrder.select().where(LicenceOrder.id == waiting["id"]).first())["status"] == "cancelled"
    with pytest.raises(decisions.InvalidTransition):
        await decisions.assign_order(partner, waiting["id"], T0)


async def test_onboarding_a_customer_with_a_bad_first_order_writes_nothing(tree):
    from portal.domain import companies
    from portal.tables import Company

    _, partner = await actors(tree)
    before = await Company.count()
    with pytest.raises(ValidationFailed):
        await companies.onboard_customer(partner, tree.sub["id"], "Half Made", T0, first_order=0)
    assert await Company.count() == before
    made = await companies.onboard_customer(partner, tree.sub["id"], "Whole", T0, first_order=20, po_number="PO-1")
    order = await LicenceOrder.select().where(LicenceOrder.company == made["id"]).first()
    assert (order["quantity"], order["po_number"], order["status"]) == (20, "PO-1", "requested")


async def test_without_a_running_batch_the_refusal_says_to_request_licenses(tree):
    customer, _ = await actors(tree)
    ids = tuple(await learners(tree.north, 2))
    with pytest.raises(allocation.NotEnoughSeats) as refused:
        await allocation.allocate(customer, tree.north["id"], Selection(user_ids=ids), T0)
    assert "Request Licenses" in str(refused.value) and refused.value.free == 0
    assert await allocation.allocate_new_learner(customer, tree.north["id"], ids[0], T0) is False


async def test_requested_orders_filter_newest_first_and_count_across_pages(tree):
    customer, partner = await actors(tree)
    sub = await load_actor(tree.managers["sub"]["id"], None)
    direct = await load_actor(tree.managers["direct"]["id"], None)
    for i in range(30):  # north, under the sub-partner: 30 orders of 1 to 30 licences, a minute apart
        await requests.request_order(customer, tree.north["id"], i + 1, None, "", T0 + timedelta(minutes=i))
    await requests.request_order(direct, tree.direct["id"], 7, None, "", T0)
    requested = order_list.ORDER_FILTERS.values(status="requested")
    first = await order_list.list_orders(partner, requested, None, SECRET)
    assert (first.total, len(first.items), first.has_next) == (31, 25, True)
    assert [o["quantity"] for o in first.items[:3]] == [30, 29, 28]  # newest first
    second = await order_list.list_orders(partner, requested, first.next_cursor, SECRET)
    assert (second.total, len(second.items), second.has_next) == (31, 6, False)
    assert (second.first_number, second.last_number) == (26, 31)
    narrowed = order_list.ORDER_FILTERS.values(customer=tree.north["id"], min_quantity=10, max_quantity=12)
    assert [o["quantity"] for o in (await order_list.list_orders(partner, narrowed, None, SECRET)).items] == [
        12,
        11,
        10,
    ]
    none = await order_list.list_orders(partner, order_list.ORDER_FILTERS.values(status="assigned"), None, SECRET)
    assert (none.total, none.items) == (0, [])
    # The sub-partner's wing holds North, not the customer directly under the partner.
    assert (await order_list.list_orders(sub, order_list.ORDER_FILTERS.values(), None, SECRET)).total == 30


async def test_the_database_gives_every_order_its_companys_path(tree):
    """Whatever inserts an order (an older release mid-deploy, a script), it
    lands in the right wing: the path comes from the company, not the caller."""
    await LicenceOrder.insert(
        LicenceOrder(company=tree.north["id"], product=(await catalogue.products())[0]["id"], quantity=3)
    )
    row = await LicenceOrder.select(LicenceOrder.company_path).first()
    assert row["company_path"] == tree.north["path"]
    _, partner = await actors(tree)
    assert (await order_list.list_orders(partner, order_list.ORDER_FILTERS.values(), None, SECRET)).total == 1


class _Undo(Exception):
    """Raised to roll back what a block wrote, once it has been read."""


async def _what_it_writes(write) -> dict:
    """The seats, batch counts, licence ends, tally and audit entries after
    `write` (or what it raised), inside a transaction then rolled back, so two
    ways of doing the same thing can run on the same starting point."""
    seen: dict = {}
    try:
        async with db.write_transaction():
            try:
                seen["returned"] = await write()
            except DomainError as refused:
                seen["refused"] = (type(refused).__name__, str(refused), getattr(refused, "errors", None))
            seen["seats"] = await Allocation.select(*Allocation.all_columns(exclude=[Allocation.id])).order_by(
                Allocation.user
            )
            seen["batches"] = await LicenceBatch.select(LicenceBatch.id, LicenceBatch.allocated).order_by(
                LicenceBatch.id
            )
            seen["users"] = await User.select(User.id, User.licence_ends_at, User.active).order_by(User.id)
            seen["tally"] = await User.raw(
                "SELECT company, ends_at, users FROM licence_tally WHERE users <> 0 ORDER BY company, ends_at"
            )
            entries = await AuditEntry.select(*AuditEntry.all_columns(exclude=[AuditEntry.id])).order_by(AuditEntry.id)
            seen["audit"] = [{**e, "detail": json.loads(e["detail"])} for e in entries]
            raise _Undo
    except _Undo:
        pass
    return seen


async def _by_allocate(actor, company_id: int, user_id: int, now: datetime) -> bool:
    """A new learner's seat as `allocate` gives it: what allocate_new_learner did before its own statement."""
    try:
        result = await allocation.allocate(actor, company_id, Selection(user_ids=(user_id,)), now)
    except allocation.NotEnoughSeats:
        return False
    return result.renewed == 1


@pytest.mark.parametrize("case", ["new", "two_batches", "covered_past_the_end", "no_free_seat", "inactive", "theirs"])
async def test_a_new_learners_seat_is_what_allocate_writes_for_one_user(tree, case):
    customer, _ = await actors(tree)
    first = await assigned_batch(tree, 2, T0)
    (learner,) = await learners(tree.north, 1)
    company_id = tree.north["id"]
    now = T0 + timedelta(days=10)
    if case == "two_batches":  # the one that ends first, with a free seat
        await assigned_batch(tree, 3, T0 + timedelta(days=5))
    if case == "covered_past_the_end":
        await User.update({User.licence_ends_at: first["ends_at"] + timedelta(days=40)}).where(User.id == learner)
    if case == "no_free_seat":
        others = await learners(tree.north, 2, prefix="other")
        await allocation.allocate(customer, company_id, Selection(user_ids=tuple(others)), T0)
    if case == "inactive":
        await User.update({User.active: False}).where(User.id == learner)
    if case == "theirs":
        learner = (await add_user(tree.other_customer, "theirs@elsewhere.example", role="learner"))["id"]

    expected = await _what_it_writes(lambda: _by_allocate(customer, company_id, learner, now))
    written = await _what_it_writes(lambda: allocation.allocate_new_learner(customer, company_id, learner, now))
    assert written == expected
    assert ("refused" in written) == (case in ("inactive", "theirs"))
    assert written.get("returned", False) == (case in ("new", "two_batches"))


async def test_a_new_learner_waits_for_nobody_else_s_seat_under_concurrency(tree):
    """Twelve learners added at once, five seats: five get one, and the batch counts five."""
    customer, _ = await actors(tree)
    batch = await assigned_batch(tree, 5, T0)
    ids = await learners(tree.north, 12)
    seated = await asyncio.gather(*(allocation.allocate_new_learner(customer, tree.north["id"], i, T0) for i in ids))
    assert sum(seated) == 5
    assert await Allocation.count().where(Allocation.batch == batch["id"]) == 5
    assert (await LicenceBatch.select().where(LicenceBatch.id == batch["id"]).first())["allocated"] == 5
