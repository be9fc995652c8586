""" "Select users Manually": "Take seats from" lists running batches with free seats
and defaults to the one that runs longest; the result names the batch by its date;
a user's history names batches by seats and date, never by id."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.domain.licences import allocation, tabs
from portal.domain.licences.allocation import Selection
from portal.tables import Allocation, LicenceBatch, User
from tests.factories import T0, add_user
from tests.support import csrf_of, sign_in
from tests.test_licences_domain import actors, assigned_batch, learners
from tests.test_licences_web import seats_assigned


async def test_take_seats_from_lists_running_batches_with_room_longest_first_chosen(tree):
    customer, _ = await actors(tree)
    ended = await assigned_batch(tree, 5, T0 - timedelta(days=400))
    full = await assigned_batch(tree, 1, T0)
    soon = await assigned_batch(tree, 3, T0 + timedelta(days=1))
    longest = await assigned_batch(tree, 3, T0 + timedelta(days=2))
    (holder,) = await learners(tree.north, 1)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(holder,)), T0, full["id"])
    view = await tabs.licence_view(customer, tree.north["id"], "expired", "", None, T0 + timedelta(days=3), b"k")
    assert [b["id"] for b in view["take_from"]] == [soon["id"], longest["id"]]  # no ended, no full batch
    assert view["take_from_default"] == longest["id"]
    ended_row = next(b for b in view["batches"] if b["id"] == ended["id"])
    assert (ended_row["running"], ended_row["status"]) == (False, "ended")


async def test_allocating_from_a_chosen_batch_says_its_dates(tree):
    customer, _ = await actors(tree)
    chosen = await assigned_batch(tree, 2, T0)
    await assigned_batch(tree, 2, T0 + timedelta(days=5))
    users = tuple(await learners(tree.north, 2))
    now = T0 + timedelta(days=6)
    result = await allocation.allocate(
        customer, tree.north["id"], Selection(user_ids=users), now, batch_id=chosen["id"]
    )
    assert (result.renewed, result.batch_starts_at, result.ends_at) == (2, T0, chosen["ends_at"])
    ends = {u["licence_ends_at"] for u in await User.select(User.licence_ends_at).where(User.id.is_in(list(users)))}
    assert ends == {chosen["ends_at"]}


async def test_manual_mode_is_a_link_with_ticks_the_batch_choice_and_the_end_date(client, tree):
    for n in range(3):
        await add_user(tree.north, f"m{n}@north.example", role="learner")
    await seats_assigned(client, tree, 10)
    base = f"/companies/{tree.north['id']}/licences?tab=unlicensed&q="
    plain = await client.get(base)
    assert 'name="user_id"' not in plain.text and "Allocate Licenses</button>" not in plain.text
    escaped = base.replace("&", "&amp;")
    assert f'href="{escaped}&amp;select=manual"' in plain.text and ">Select users Manually</a>" in plain.text

    manual = await client.get(base + "&select=manual")
    batch = await LicenceBatch.select().first()
    assert manual.text.count('name="user_id"') == 4  # three learners and North's manager
    assert 'data-check-all="user_id"' in manual.text and "Select all users on this page" in manual.text
    ends = f"{batch['ends_at']:%d %b %Y}"
    assert f'data-testid="manual-ends">{ends}<' in manual.text
    assert re.search(rf'<option value="{batch["id"]}" data-ends="{ends}" selected>', manual.text)
    assert f"10 free of 10, assigned {batch['starts_at']:%d %b %Y}, ends {ends}" in manual.text
    fragment = await client.get(base + "&select=manual", headers={"HX-Request": "true", "HX-Target": "licence-tab"})
    assert "<html" not in fragment.text and 'name="batch_id"' in fragment.text

    emails = [f"m{n}@north.example" for n in range(3)]
    ids = [str(u["id"]) for u in await User.select(User.id).where(User.email.is_in(emails))]
    done = await client.post(
        f"/companies/{tree.north['id']}/licences/allocate",
        data={"_csrf_token": csrf_of(manual.text), "tab": "unlicensed", "batch_id": str(batch["id"]), "user_id": ids},
    )
    assert done.status_code in (302, 303)
    page = await client.get(done.headers["location"])
    assert f"3 users renewed until {ends} from the batch assigned {batch['starts_at']:%d %b %Y}." in page.text
    assert await Allocation.count().where(Allocation.batch == batch["id"]) == 3


async def test_without_free_seats_manual_mode_offers_request_licenses(client, tree):
    await add_user(tree.north, "x@north.example", role="learner")
    await sign_in(client, tree.email("north"))
    page = await client.get(f"/companies/{tree.north['id']}/licences?tab=unlicensed&select=manual")
    assert "No running batch has free seats." in page.text and "Allocate Licenses</button>" not in page.text


async def test_pages_name_batches_by_dates_and_ended_ones_show_no_free_seats(client, tree):
    customer, _ = await actors(tree)
    long_ago = T0 - timedelta(days=800)
    old = await assigned_batch(tree, 5, long_ago)  # ended long before today
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(tree.managers["north"]["id"],)), long_ago)
    await sign_in(client, tree.email("north"))
    user = await client.get(f"/companies/{tree.north['id']}/users/{tree.managers['north']['id']}")
    assert f"5 seats, assigned {old['starts_at']:%d %b %Y}" in user.text
    assert not re.search(r"batch \d", user.text)
    section = await client.get(f"/companies/{tree.north['id']}/licences")
    row = re.search(r'data-testid="batches">.*?</table>', section.text, re.S).group(0)
    assert ">Ended<" in row and "none, ended" in row and '<td class="right">4</td>' not in row
