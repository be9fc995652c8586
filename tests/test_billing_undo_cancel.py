"""Who may undo a cancellation: one that partner staff
made (confirmed, or Cancel pressed in manage mode) is undone by partner staff only,
online subscriptions too; the customer's own Cancel stays theirs to undo."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain.access import load_actor
from portal.domain.billing import cancellation, subscriptions
from portal.domain.errors import ValidationFailed
from tests.support import post_form, sign_in
from tests.test_billing_subscriptions import NOW, actors, bought_online
from tests.test_billing_web import flashes

STAFF_CANCELLED = "Your partner's staff cancelled this subscription: ask them to undo it."


async def test_a_customer_cannot_undo_a_cancellation_partner_staff_confirmed(tree):
    customer, seller = await actors(tree)
    sub = (await bought_online(tree))["subscription"]
    await cancellation.confirm_cancellation(seller, sub["id"], NOW + timedelta(days=1))
    with pytest.raises(ValidationFailed) as refused:
        await cancellation.undo_cancel(customer, sub["id"], NOW + timedelta(days=2))
    assert refused.value.errors == {"subscription": STAFF_CANCELLED}
    current = await subscriptions.current_subscription(customer, tree.north["id"])
    assert (current["auto_renew"], current["cancelled_by_staff"]) == (False, True)
    undone = await cancellation.undo_cancel(seller, sub["id"], NOW + timedelta(days=2))
    assert undone["auto_renew"] is True


async def test_cancel_pressed_by_partner_staff_in_manage_mode_is_theirs_to_undo(tree):
    customer, _ = await actors(tree)
    managing = await load_actor(tree.managers["sub"]["id"], tree.north["id"])
    sub = (await bought_online(tree))["subscription"]
    await cancellation.cancel(managing, sub["id"], NOW + timedelta(days=1))
    with pytest.raises(ValidationFailed):
        await cancellation.undo_cancel(customer, sub["id"], NOW + timedelta(days=2))
    # The customer's own Cancel, afterwards, is theirs again.
    await cancellation.undo_cancel(managing, sub["id"], NOW + timedelta(days=2))
    await cancellation.cancel(customer, sub["id"], NOW + timedelta(days=3))
    assert (await subscriptions.current_subscription(customer, tree.north["id"]))["cancelled_by_staff"] is False
    undone = await cancellation.undo_cancel(customer, sub["id"], NOW + timedelta(days=4))
    assert undone["auto_renew"] is True


async def test_the_subscriptions_page_offers_undo_to_whoever_may(client, tree):
    _, seller = await actors(tree)
    sub = (await bought_online(tree))["subscription"]
    await cancellation.confirm_cancellation(seller, sub["id"], NOW + timedelta(days=1))
    await sign_in(client, tree.email("north"))
    page_path = f"/companies/{tree.north['id']}/billing/subscriptions"
    page = await client.get(page_path)
    assert "/undo-cancel" not in page.text
    assert "Cancelled by your partner's staff: the license ends on" in page.text
    refused = await post_form(client, page_path, f"/billing/subscriptions/{sub['id']}/undo-cancel", {})
    assert refused.status_code == 302
    assert flashes((await client.get(page_path)).text) == [STAFF_CANCELLED]
    client.cookies.clear()
    await sign_in(client, tree.email("sub"))
    listing = await client.get("/billing")
    assert f'action="/billing/subscriptions/{sub["id"]}/undo-cancel"' in listing.text
