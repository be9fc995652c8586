""" "Select All" confirms before it allocates: how many, and from which batch."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain.errors import NotFound
from portal.domain.licences import allocation, tabs
from portal.domain.licences.allocation import Selection
from tests.factories import T0
from tests.test_licences_domain import actors, assigned_batch, learners


async def test_the_batch_with_room_for_everyone_is_preselected(tree):
    customer, _ = await actors(tree)
    small = await assigned_batch(tree, 2, T0)  # ends first, too small for five
    roomy = await assigned_batch(tree, 10, T0 + timedelta(days=5))
    larger = await assigned_batch(tree, 20, T0 + timedelta(days=9))
    await learners(tree.north, 4)  # and the manager: five unlicensed
    now = T0 + timedelta(days=10)
    view = await allocation.select_all_view(customer, tree.north["id"], Selection(select_all_tab="unlicensed"), now)
    assert view.count == 5 and view.company["id"] == tree.north["id"]
    assert [b["id"] for b in view.running] == [small["id"], roomy["id"], larger["id"]]  # ending soonest first
    assert view.preselected == roomy["id"]

    few = await allocation.select_all_view(
        customer, tree.north["id"], Selection(select_all_tab="unlicensed", q="learner1"), now
    )
    assert few.count == 1 and few.preselected == small["id"]


async def test_no_batch_is_preselected_when_none_has_room(tree):
    customer, _ = await actors(tree)
    await assigned_batch(tree, 2, T0)
    await learners(tree.north, 4)
    view = await allocation.select_all_view(customer, tree.north["id"], Selection(select_all_tab="unlicensed"), T0)
    assert view.count == 5 and len(view.running) == 1 and view.preselected is None


async def test_select_all_outside_the_wing_is_not_found(tree):
    customer, _ = await actors(tree)
    with pytest.raises(NotFound):
        await allocation.select_all_view(customer, tree.other_customer["id"], Selection(select_all_tab="expired"), T0)


def test_an_empty_tab_says_who_is_missing_and_among_whom():
    assert tabs.empty_tab_message("expired", "") == "No one's license has expired."
    assert tabs.empty_tab_message("active", "dana") == "No one holds a running seat among users matching “dana”."
