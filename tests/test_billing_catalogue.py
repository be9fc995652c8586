"""Each seller's catalogue and billing profile: the guide's figures first, then the partner's."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from portal.domain import audit
from portal.domain.access import load_actor
from portal.domain.billing import catalogue, profiles
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import AuditEntry
from portal.tables.billing import BillingProfile, CatalogueItem
from tests.factories import T0


async def actor_of(tree, key):
    actor = await load_actor(tree.managers[key]["id"], None)
    assert actor is not None
    return actor


async def test_the_seller_is_the_parent_company(tree):
    assert (await catalogue.seller_of(tree.direct["id"]))["id"] == tree.partner["id"]
    assert (await catalogue.seller_of(tree.north["id"]))["id"] == tree.sub["id"]
    with pytest.raises(NotFound):
        await catalogue.seller_of(tree.partner["id"])
    with pytest.raises(NotFound):
        await catalogue.seller_of(tree.sub["id"])  # a sub-partner buys from no one here
    with pytest.raises(NotFound):
        await catalogue.seller_of(999_999)


async def test_first_read_writes_the_guides_figures_once(tree):
    first, second = await asyncio.gather(catalogue.items(tree.partner["id"]), catalogue.items(tree.partner["id"]))
    assert [(i["code"], i["price_cents"], i["period"], i["included_users"]) for i in first] == [
        ("lite", 300000, "year", 5),
        ("pro", 600000, "year", 10),
        ("standard_user", 3000, "month", 0),
        ("read_only_user", 500, "month", 0),
        ("onboarding", 200000, "once", 0),
        ("report_summary", 400000, "once", 0),
        ("report_ecosystem", 600000, "once", 0),
        ("report_full", 800000, "once", 0),
    ]
    assert [i["id"] for i in second] == [i["id"] for i in first]
    assert await CatalogueItem.count().where(CatalogueItem.partner == tree.partner["id"]) == 8
    # Another seller gets its own rows.
    assert await CatalogueItem.count().where(CatalogueItem.partner == tree.sub["id"]) == 0
    assert len(await catalogue.items(tree.sub["id"])) == 8
    assert catalogue.yearly_cents(first[2]) == 36000
    assert catalogue.yearly_cents(first[1]) == 600000


async def test_a_partner_manager_sets_prices_and_takes_items_off_sale(tree):
    actor = await actor_of(tree, "partner")
    saved = await catalogue.save_item(
        actor, tree.partner["id"], "pro", price_cents=750000, included_users=12, active=True, now=T0
    )
    assert (saved["price_cents"], saved["included_users"]) == (750000, 12)
    assert (await catalogue.item(tree.partner["id"], "pro"))["price_cents"] == 750000
    await catalogue.save_item(
        actor, tree.partner["id"], "report_full", price_cents=800000, included_users=None, active=False, now=T0
    )
    with pytest.raises(ValidationFailed) as refused:
        await catalogue.item(tree.partner["id"], "report_full")
    assert refused.value.errors == {"item": "That item is not for sale."}
    with pytest.raises(ValidationFailed):
        await catalogue.item(tree.partner["id"], "platinum")
    entries = await AuditEntry.select(AuditEntry.action, AuditEntry.detail).order_by(AuditEntry.id)
    assert entries[0]["action"] == "billing.catalogue_item.save"
    detail = json.loads(entries[0]["detail"])
    assert (detail["price_cents"], detail["old_price_cents"], detail["currency"]) == (750000, 600000, "USD")
    # The partner above a sub-partner may set its prices too (under its wing).
    await catalogue.save_item(actor, tree.sub["id"], "lite", price_cents=1, included_users=1, active=True, now=T0)
    assert (await catalogue.item(tree.sub["id"], "lite"))["price_cents"] == 1


async def test_bad_prices_are_refused_and_nothing_is_written(tree):
    actor = await actor_of(tree, "partner")
    with pytest.raises(ValidationFailed) as refused:
        await catalogue.save_item(
            actor, tree.partner["id"], "lite", price_cents=-1, included_users=-2, active=True, now=T0
        )
    assert set(refused.value.errors) == {"price_cents", "included_users"}
    with pytest.raises(ValidationFailed) as refused:
        await catalogue.save_item(
            actor, tree.partner["id"], "lite", price_cents=100, included_users=None, active=True, now=T0
        )
    assert set(refused.value.errors) == {"included_users"}
    with pytest.raises(NotFound):
        await catalogue.save_item(
            actor, tree.partner["id"], "nothing", price_cents=100, included_users=None, active=True, now=T0
        )
    assert (await catalogue.item(tree.partner["id"], "lite"))["price_cents"] == 300000
    assert await AuditEntry.count() == 0


async def test_only_the_sellers_own_staff_change_its_catalogue(tree):
    with pytest.raises(PermissionDenied):
        await catalogue.save_item(
            await actor_of(tree, "direct"),
            tree.partner["id"],
            "lite",
            price_cents=1,
            included_users=1,
            active=True,
            now=T0,
        )
    with pytest.raises(NotFound):  # another tenant
        await catalogue.save_item(
            await actor_of(tree, "other"),
            tree.partner["id"],
            "lite",
            price_cents=1,
            included_users=1,
            active=True,
            now=T0,
        )
    with pytest.raises(NotFound):  # above the sub-partner's wing
        await catalogue.save_item(
            await actor_of(tree, "sub"),
            tree.partner["id"],
            "lite",
            price_cents=1,
            included_users=1,
            active=True,
            now=T0,
        )
    read_only = replace(await actor_of(tree, "partner"), read_only=True)
    with pytest.raises(PermissionDenied):
        await catalogue.save_item(
            read_only, tree.partner["id"], "lite", price_cents=1, included_users=1, active=True, now=T0
        )
    assert (await catalogue.item(tree.partner["id"], "lite"))["price_cents"] == 300000


async def test_profile_defaults_then_the_partners_settings(tree):
    first, second = await asyncio.gather(profiles.profile(tree.partner["id"]), profiles.profile(tree.partner["id"]))
    assert first["id"] == second["id"]
    assert (first["currency"], first["tax_rate_bp"], first["assign_unpaid"], first["next_invoice_number"]) == (
        "USD",
        0,
        False,
        1,
    )
    actor = await actor_of(tree, "partner")
    saved = await profiles.save_profile(
        actor, tree.partner["id"], currency="eur", tax_rate_bp=825, assign_unpaid=True, now=T0
    )
    assert (saved["currency"], saved["tax_rate_bp"], saved["assign_unpaid"]) == ("EUR", 825, True)
    row = await BillingProfile.select().where(BillingProfile.company == tree.partner["id"]).first()
    assert (row["currency"], row["tax_rate_bp"], row["assign_unpaid"]) == ("EUR", 825, True)
    page = await audit.list_entries(actor, {}, None, b"cursor key")
    assert page.items[0]["action"] == "billing.profile.save"
    assert page.items[0]["detail"]["old_currency"] == "USD"
    assert page.items[0]["sentence"] == (
        "Changed the billing settings of Acme MSP: currency USD → EUR, tax 0 % → 8.25 %, "
        "licenses assigned before payment"
    )


async def test_bad_profiles_are_refused(tree):
    actor = await actor_of(tree, "partner")
    with pytest.raises(ValidationFailed) as refused:
        await profiles.save_profile(
            actor, tree.partner["id"], currency="XYZ", tax_rate_bp=10_001, assign_unpaid=False, now=T0
        )
    assert set(refused.value.errors) == {"currency", "tax_rate_bp"}
    with pytest.raises(NotFound):
        await profiles.save_profile(
            actor, tree.direct["id"], currency="USD", tax_rate_bp=0, assign_unpaid=False, now=T0
        )
    with pytest.raises(NotFound):
        await profiles.save_profile(
            await actor_of(tree, "other"),
            tree.partner["id"],
            currency="USD",
            tax_rate_bp=0,
            assign_unpaid=False,
            now=T0,
        )
    with pytest.raises(PermissionDenied):
        await profiles.save_profile(
            await actor_of(tree, "direct"),
            tree.partner["id"],
            currency="USD",
            tax_rate_bp=0,
            assign_unpaid=False,
            now=T0,
        )
    assert await BillingProfile.count() == 0
