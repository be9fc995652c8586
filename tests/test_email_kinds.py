"""One home for e-mail kinds: every kind is a registry entry and a pair of
templates; code queues the kind's name and its fields, and the e-mail is
rendered from them when it goes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from portal.domain.access import load_actor
from portal.domain.emails import queue as emails
from portal.domain.emails.content import render_rows
from portal.domain.emails.kinds import KINDS
from portal.domain.orders import decisions, requests
from portal.mail.delivery import deliver_batch
from portal.settings import PROJECT_DIR
from portal.tables import OutboxEmail
from tests.factories import T0
from tests.support import BASE_URL

TEMPLATES = PROJECT_DIR / "templates" / "email"


def test_every_kind_has_a_text_and_an_html_template_and_every_template_a_kind():
    for name in KINDS:
        assert (TEMPLATES / f"{name}.txt").is_file(), name
        assert (TEMPLATES / f"{name}.html").is_file(), name
    own = {p.stem for p in TEMPLATES.iterdir() if not p.name.startswith("_")}
    assert own == set(KINDS)


async def test_a_kind_is_queued_with_exactly_its_fields(tree):
    with pytest.raises(ValueError, match="missing \\['reason'\\], unknown \\['why'\\]"):
        await emails.queue_kind(
            "order_declined", None, ["a@b.example"], {"quantity": 1, "declined_by": "X", "why": "no"}, T0, "x"
        )
    with pytest.raises(LookupError):
        await emails.queue_kind("no_such_kind", None, ["a@b.example"], {}, T0, "x")
    assert await OutboxEmail.count() == 0


async def test_licenses_ready_is_one_kind_whether_assigned_or_paid_for(tree):
    customer = await load_actor(tree.managers["north"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    order = await requests.request_order(customer, tree.north["id"], 5, None, "", T0)
    await decisions.assign_order(partner, order["id"], T0)
    (row,) = await OutboxEmail.select().where(OutboxEmail.kind == "order_assigned")
    fields = json.loads(row["data"])
    assert set(fields) == set(KINDS["order_assigned"].fields) and fields["paid"] is False
    # Queued: a preview of what it says, for the Notifications page.
    assert row["subject"] == "5 licenses are ready to allocate"
    assert "are assigned and ready to allocate" in row["body"]


async def test_the_e_mail_is_rendered_when_it_goes_from_the_fields_queued_with_it(tree):
    customer = await load_actor(tree.managers["north"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    order = await requests.request_order(customer, tree.north["id"], 5, None, "", T0)
    await decisions.decline_order(partner, order["id"], "Budget is spent", T0)
    (row,) = await OutboxEmail.select().where(OutboxEmail.kind == "order_declined")
    # The fields change after it was queued (a corrected reason): what goes says what they say then.
    changed = json.loads(row["data"]) | {"reason": "Ask again in January"}
    await OutboxEmail.update({OutboxEmail.data: json.dumps(changed)}).where(OutboxEmail.id == row["id"])
    await deliver_batch(T0 + timedelta(seconds=1), None, base_url=BASE_URL)
    sent = await OutboxEmail.select().where(OutboxEmail.id == row["id"]).first()
    assert sent["status"] == "captured"
    assert sent["subject"] == "Your order of 5 licenses was declined"
    assert "Ask again in January" in sent["body"] and "Ask again in January" in sent["html"]
    assert "Budget is spent" not in sent["body"]


async def test_a_row_that_carries_its_text_goes_with_it(tree):
    from portal.domain import outbox

    await outbox.queue_email(
        "order_declined", tree.north["id"], ["a@north.example"], "Old way", "Said as it was.", T0, "old"
    )
    (row,) = await OutboxEmail.select()
    content = (await render_rows([row], base_url=BASE_URL))[row["id"]]
    assert content.subject == "Old way" and content.text == "Said as it was." and "Said as it was." in content.html


async def test_its_links_are_paths_while_it_waits_and_under_the_base_url_it_is_rendered_with(tree):
    customer = await load_actor(tree.managers["north"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    order = await requests.request_order(customer, tree.north["id"], 5, None, "", T0)
    await decisions.assign_order(partner, order["id"], T0)
    (row,) = await OutboxEmail.select().where(OutboxEmail.kind == "order_assigned")
    path = f"/companies/{tree.north['id']}/licences?tab=expired"
    # Where it was queued, nobody knew where the portal is reached from outside.
    assert f"\n{path}\n" in row["body"]
    for base_url in ("https://licences.example.com", BASE_URL):
        content = (await render_rows([row], base_url))[row["id"]]
        assert f"\n{base_url}{path}\n" in content.text and f'href="{base_url}{path}"' in content.html
