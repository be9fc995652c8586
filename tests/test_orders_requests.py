"""Request Licenses says what the company holds and warns before a likely slip;
the partner's largest order is enforced; Assign says what it will create; the
Requested Orders URL defaults to status Requested. Domain, each engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.domain import partner_settings
from portal.domain.errors import ValidationFailed
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions, order_list, requests
from portal.tables import LicenceBatch, LicenceOrder, OutboxEmail
from tests.factories import T0
from tests.test_licences_domain import actors, assigned_batch, learners

# Signs the list cursors in these tests (the app derives its own from SECRET_KEY).
SECRET = b"test cursor key"


async def test_advice_counts_free_seats_of_running_batches_and_users_waiting(tree):
    customer, _ = await actors(tree)
    ended = await assigned_batch(tree, 9, T0 - timedelta(days=400))  # 9 free seats, of no use any more
    running = await assigned_batch(tree, 4, T0)
    expired = await learners(tree.north, 3, "old")
    await allocation.allocate(
        customer, tree.north["id"], Selection(user_ids=tuple(expired)), T0 - timedelta(days=399), ended["id"]
    )
    await learners(tree.north, 5, "new")  # unlicensed, with North's manager: 6
    holder = await learners(tree.north, 1, "holder")
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=tuple(holder)), T0, running["id"])

    advice = await requests.request_advice(customer, tree.north["id"], T0 + timedelta(days=1))
    assert (advice.free, advice.expired, advice.unlicensed, advice.waiting) == (3, 3, 6, 9)
    assert advice.suggested == 6 and advice.limit == 10_000 and advice.pending == []
    assert advice.warnings() == []


async def test_the_suggestion_is_at_least_one_and_at_most_the_limit(tree):
    customer, partner = await actors(tree)
    await assigned_batch(tree, 5, T0)
    advice = await requests.request_advice(customer, tree.north["id"], T0)
    assert (advice.free, advice.waiting, advice.suggested) == (5, 1, 1)  # the manager waits; seats cover them
    await learners(tree.north, 12)
    await partner_settings.save(partner, tree.partner["id"], max_order_quantity=4, low_seat_threshold=0, now=T0)
    assert (await requests.request_advice(customer, tree.north["id"], T0)).suggested == 4  # 13 − 5, capped at 4


async def test_a_request_while_another_waits_is_held_until_confirmed(tree):
    customer, _ = await actors(tree)
    await learners(tree.north, 30)
    await requests.request_order(customer, tree.north["id"], 25, None, "", T0)
    with pytest.raises(requests.NeedsConfirmation) as held:
        await requests.request_order(customer, tree.north["id"], 5, None, "", T0, confirmed=False)
    assert held.value.advice.warnings() == [
        "North Customer already has a request waiting for its account managers: 25 licenses, requested 15 Jan 2026."
    ]
    assert await LicenceOrder.count() == 1
    assert await OutboxEmail.count().where(OutboxEmail.kind == "order_requested") == 1
    await requests.request_order(customer, tree.north["id"], 5, None, "", T0, confirmed=True)
    with pytest.raises(requests.NeedsConfirmation) as two:
        await requests.request_order(customer, tree.north["id"], 1, None, "", T0, confirmed=False)
    assert two.value.advice.warnings() == [
        "North Customer already has 2 requests waiting for its account managers, 30 licenses in all."
    ]
    assert await LicenceOrder.count() == 2


async def test_free_seats_enough_for_everyone_waiting_are_a_warning(tree):
    customer, _ = await actors(tree)
    await assigned_batch(tree, 3, T0)
    await learners(tree.north, 2)  # and the manager: three waiting, three free
    with pytest.raises(requests.NeedsConfirmation) as held:
        await requests.request_order(customer, tree.north["id"], 10, None, "", T0, confirmed=False)
    assert held.value.advice.warnings() == [
        "North Customer already holds 3 free seats, enough for the 3 users waiting (expired or unlicensed): "
        "allocate them under Expired Licenses."
    ]
    await learners(tree.north, 1, "fourth")  # four waiting, three free: nothing to warn about
    order = await requests.request_order(customer, tree.north["id"], 1, None, "", T0, confirmed=False)
    assert order["status"] == "requested"


async def test_an_ended_batch_never_counts_as_free_seats(tree):
    customer, _ = await actors(tree)
    batch = await assigned_batch(tree, 50, T0)
    after = batch["ends_at"]
    assert (await requests.request_advice(customer, tree.north["id"], after - timedelta(seconds=1))).free == 50
    assert (await requests.request_advice(customer, tree.north["id"], after)).free == 0
    order = await requests.request_order(customer, tree.north["id"], 1, None, "", after, confirmed=False)
    assert order["quantity"] == 1


async def test_quantities_above_the_partners_limit_are_refused_with_nothing_written(tree):
    customer, partner = await actors(tree)
    with pytest.raises(ValidationFailed) as refused:
        await requests.request_order(customer, tree.north["id"], 10_001, None, "", T0)
    assert refused.value.errors == {
        "quantity": "At most 10,000 licenses in one order: the largest order your account managers accept. "
        "Ask them if you need more."
    }
    await partner_settings.save(partner, tree.sub["id"], max_order_quantity=50, low_seat_threshold=0, now=T0)
    with pytest.raises(ValidationFailed, match="At most 50 licenses in one order"):
        await requests.request_order(customer, tree.north["id"], 51, None, "", T0)
    assert await LicenceOrder.count() == 0
    assert (await requests.request_order(customer, tree.north["id"], 50, None, "", T0))["quantity"] == 50


async def test_assign_preview_says_the_end_date_and_refuses_a_decided_order(tree):
    customer, partner = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], 7, None, "PO-9", T0)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    preview = await decisions.assign_preview(partner, order["id"], at)
    assert preview.ends_at == datetime(2027, 11, 23, 10, 0, tzinfo=UTC)
    assert (preview.order["company_name"], preview.order["quantity"], preview.order["product_short"]) == (
        "North Customer",
        7,
        "Premium",
    )
    assert await LicenceBatch.count() == 0
    await decisions.assign_order(partner, order["id"], at)
    with pytest.raises(decisions.InvalidTransition, match="already assigned"):
        await decisions.assign_preview(partner, order["id"], at)


async def test_requested_orders_default_to_requested_and_any_lists_every_status(tree):
    customer, partner = await actors(tree)
    first = await requests.request_order(customer, tree.north["id"], 1, None, "", T0)
    await requests.request_order(customer, tree.north["id"], 2, None, "", T0)
    await decisions.decline_order(partner, first["id"], "No budget", T0)

    bare = order_list.parse_filters({})
    assert bare == {"status": "requested"}
    assert [o["quantity"] for o in (await order_list.list_orders(partner, bare, None, SECRET)).items] == [2]
    every = order_list.parse_filters({"status": "any", "customer": str(tree.north["id"])})
    assert order_list.ORDER_FILTERS.as_query(every) == {"status": "any", "customer": str(tree.north["id"])}
    assert [o["quantity"] for o in (await order_list.list_orders(partner, every, None, SECRET)).items] == [2, 1]
    # An old link with a filter and no status keeps its filter, Requested added.
    assert order_list.parse_filters({"min_quantity": "2"}) == {"status": "requested", "min_quantity": 2}


def test_a_product_is_shown_by_its_short_name():
    assert order_list.short_product_name("Security Awareness Training — Premium") == "Premium"
    assert order_list.short_product_name("Security Awareness Training — Free trial") == "Free trial"
    assert order_list.short_product_name("Phishing") == "Phishing"
