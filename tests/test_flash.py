"""Success messages are set by the action, kept in the session and shown
once; never read from the URL (`?renewed=5000` showed "5000 users renewed." to
anyone who followed a link)."""

from __future__ import annotations

import re

from portal.domain.licences.allocation import Allocated
from portal.tables import LicenceBatch
from portal.web.licences import renewed_message
from tests.factories import add_user
from tests.support import post_form, sign_in
from tests.test_licences_web import HTMX, request_licences, seats_assigned

FLASH = re.compile(r'data-testid="flash">([^<]*)<')


def flashes(html: str) -> list[str]:
    return FLASH.findall(html)


async def test_a_forged_query_string_shows_nothing(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/licences"
    for query in ("?tab=active&renewed=5000&covered=3", "?tab=orders&requested=1", "?renewed=%3Cb%3Ehi"):
        page = await client.get(base + query)
        assert page.status_code == 200
        assert flashes(page.text) == [], query
        assert "5000" not in page.text and "renewed" not in page.text and "request was sent" not in page.text


async def test_allocating_says_what_it_did_once_and_not_on_reload(client, tree):
    learners = [await add_user(tree.north, f"l{n}@north.example", role="learner") for n in range(3)]
    await seats_assigned(client, tree, 5)
    batch = await LicenceBatch.select().first()
    allocated = await post_form(
        client,
        f"/companies/{tree.north['id']}/licences?tab=unlicensed",
        f"/companies/{tree.north['id']}/licences/allocate",
        {"user_id": [str(u["id"]) for u in learners], "tab": "unlicensed"},
    )
    assert allocated.headers["location"] == f"/companies/{tree.north['id']}/licences?tab=active"
    page = await client.get(allocated.headers["location"])
    assert flashes(page.text) == [
        f"3 users renewed until {batch['ends_at']:%d %b %Y} from the batch assigned {batch['starts_at']:%d %b %Y}."
    ]
    again = await client.get(allocated.headers["location"])
    assert flashes(again.text) == []


async def test_a_fragment_leaves_the_message_for_the_next_page(client, tree):
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 7)
    fragment = await client.get(
        f"/companies/{tree.north['id']}/licences?tab=orders", headers={**HTMX, "HX-Target": "licence-tab"}
    )
    assert "<html" not in fragment.text and flashes(fragment.text) == []
    page = await client.get(f"/companies/{tree.north['id']}/licences?tab=orders")
    assert flashes(page.text) == ["Your request for 7 licenses was sent to your account managers."]


async def test_messages_are_text_not_markup(client, tree):
    learner = await add_user(tree.north, "b@north.example", role="learner", name="<b>Bold</b> & Co")
    await sign_in(client, tree.email("north"))
    page = f"/companies/{tree.north['id']}/users/{learner['id']}"
    done = await post_form(client, page, f"{page}/deactivate", {})
    shown = await client.get(done.headers["location"])
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co is deactivated." in shown.text


def test_the_renewal_message_reads_the_domain_result():
    from datetime import UTC, datetime

    ends = datetime(2027, 11, 23, 9, 30, tzinfo=UTC)
    assert renewed_message(Allocated(renewed=5000, batch_id=1, ends_at=ends, already_covered=0)) == (
        "5,000 users renewed until 23 Nov 2027."
    )
    assert renewed_message(Allocated(renewed=1, batch_id=1, ends_at=ends, already_covered=2)) == (
        "1 user renewed until 23 Nov 2027. 2 users already hold seats running past that batch's end and got none."
    )
    assert renewed_message(Allocated(renewed=0, batch_id=1, ends_at=ends, already_covered=1)) == (
        "No one was renewed. 1 user already holds a seat running past that batch's end and got none."
    )


async def test_a_partial_rendered_on_its_own_leaves_the_message_too(client, tree):
    """ "Add Filter" answers a bare partial (no fragments to choose from): it must not eat the message."""
    await sign_in(client, tree.email("north"))
    await request_licences(client, tree.north["id"], 3)
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    order = (await client.get("/licences/orders")).text
    order_id = int(re.search(r'data-order="(\d+)"', order).group(1))
    await post_form(
        client, f"/licences/orders/{order_id}/menu", f"/licences/orders/{order_id}/assign", {"confirm": "1"}
    )
    field = await client.get("/licences/orders/filters/status", headers=HTMX)
    assert 'name="status"' in field.text and flashes(field.text) == []
    assert flashes((await client.get("/licences/orders")).text) != []
