"""A partner's settings reach every company under its wing, nearest first."""

from __future__ import annotations

import pytest

from portal.domain import partner_settings
from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed


async def test_companies_follow_the_nearest_partner_that_saved_settings(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    now = utcnow()
    assert await partner_settings.for_path(tree.north["path"]) == partner_settings.PartnerSettings(10_000, 0, None)

    await partner_settings.save(partner, tree.partner["id"], max_order_quantity=500, low_seat_threshold=3, now=now)
    assert (await partner_settings.for_path(tree.north["path"])).max_order_quantity == 500

    # The sub-partner's own row wins for its customers, not for the partner's direct ones.
    await partner_settings.save(partner, tree.sub["id"], max_order_quantity=50, low_seat_threshold=1, now=now)
    assert await partner_settings.for_path(tree.north["path"]) == partner_settings.PartnerSettings(
        50, 1, tree.sub["id"]
    )
    assert (await partner_settings.for_path(tree.direct["path"])).max_order_quantity == 500

    # Saved again: updated in place.
    await partner_settings.save(partner, tree.sub["id"], max_order_quantity=60, low_seat_threshold=1, now=now)
    assert (await partner_settings.for_path(tree.north["path"])).max_order_quantity == 60


async def test_only_partner_managers_save_settings_within_their_wing(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    customer = await load_actor(tree.managers["north"]["id"], None)
    now = utcnow()
    with pytest.raises(PermissionDenied):
        await partner_settings.save(customer, tree.north["id"], max_order_quantity=5, low_seat_threshold=0, now=now)
    with pytest.raises(NotFound):
        await partner_settings.save(partner, tree.other["id"], max_order_quantity=5, low_seat_threshold=0, now=now)
    with pytest.raises(ValidationFailed):
        await partner_settings.save(partner, tree.north["id"], max_order_quantity=5, low_seat_threshold=0, now=now)
    with pytest.raises(ValidationFailed, match="from 1 to"):
        await partner_settings.save(partner, tree.partner["id"], max_order_quantity=0, low_seat_threshold=0, now=now)
