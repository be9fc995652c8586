"""The Admin Dashboard's parts kept between loads (portal.domain.dashboard.kept):
the wing's version changes with every write they read, and a kept part is what
counting again would give, however the clock moves. Each engine."""

from __future__ import annotations

from datetime import timedelta

from portal.domain.clock import utcnow
from portal.domain.companies import insert_company
from portal.domain.dashboard import figures, pipeline, same_quantity, wing_batches
from portal.domain.dashboard.alerts_and_limits import said
from portal.domain.dashboard.figures import CustomerQuery
from portal.domain.dashboard.kept import Kept
from portal.domain.orders import decisions, requests
from portal.domain.partner_settings import PartnerSettings
from portal.tables import Company, LicenceBatch
from portal.tables.billing import BillingProfile, CatalogueItem, Subscription
from tests.support import sign_in
from tests.test_dashboard import NOW, actors, batch_ending


async def version(actor) -> str:
    return (await figures.customer_figures(actor, CustomerQuery(), NOW)).version


async def test_version_changes_with_every_write_the_kept_parts_read(tree):
    partner, _ = await actors(tree)
    seen = [await version(partner)]

    async def changed() -> None:
        now = await version(partner)
        assert now not in seen
        seen.append(now)

    order = await requests.request_order(partner, tree.direct["id"], 3, None, "", NOW)
    await changed()
    await decisions.decline_order(partner, order["id"], "Not this month.", NOW)
    await changed()
    await Subscription.insert(
        Subscription(company=tree.direct["id"], partner=tree.partner["id"], tier="premium", method="invoice")
    )
    await changed()
    await Subscription.update({Subscription.auto_renew: False}).where(Subscription.company == tree.direct["id"])
    await changed()
    await Company.update({Company.name: "Direct Customer Ltd"}).where(Company.id == tree.direct["id"])
    await changed()
    # The wing's tree: a sub-partner renamed, one added (neither with a customer).
    await Company.update({Company.name: "Acme North Ltd"}).where(Company.id == tree.sub["id"])
    await changed()
    await insert_company("Acme South", "sub_partner", tree.partner, NOW)
    await changed()
    # The seller's price of a standard user and its currency value the horizons' seats.
    await CatalogueItem.insert(
        CatalogueItem(partner=tree.partner["id"], code="x-user", kind="user_credit", name="User", period="month")
    )
    await changed()
    await BillingProfile.insert(BillingProfile(company=tree.partner["id"]))
    await changed()
    await BillingProfile.update({BillingProfile.currency: "EUR"}).where(BillingProfile.company == tree.partner["id"])
    await changed()
    # Its invoice counter, as every invoice moves it, raises nothing.
    await BillingProfile.update({BillingProfile.next_invoice_number: 7}).where(
        BillingProfile.company == tree.partner["id"]
    )
    assert await version(partner) == seen[-1]
    # Another partner's customer renamed: this wing's parts stay as they are.
    await Company.update({Company.name: "Elsewhere"}).where(Company.id == tree.other_customer["id"])
    assert await version(partner) == seen[-1]


async def test_kept_parts_are_what_counting_again_gives_as_the_clock_moves(tree):
    partner, _ = await actors(tree)
    await batch_ending(partner, tree.direct, 4, NOW + timedelta(hours=48))
    await batch_ending(partner, tree.direct, 5, NOW + timedelta(days=20))
    await batch_ending(partner, tree.north, 6, NOW + timedelta(days=31))
    await batch_ending(partner, tree.north, 7, NOW + timedelta(days=75))
    await batch_ending(partner, tree.direct, 8, NOW + timedelta(days=130))
    kept, wing = Kept(), await version(partner)
    # Each instant just before or after a batch's end crosses now or a horizon.
    for hours in (0, 47, 49, 24 * 19, 24 * 21, 24 * 30 + 1, 24 * 45 + 1, 24 * 70, 24 * 72, 24 * 100):
        now = NOW + timedelta(hours=hours)
        assert await wing_batches.ending_soon(partner, now, kept=kept, version=wing) == (
            await wing_batches.ending_soon(partner, now)
        ), hours
        assert await pipeline.horizons(partner, now, kept=kept, version=wing) == (
            await pipeline.horizons(partner, now)
        ), hours


async def test_a_renewal_requested_shows_on_the_next_load(client, tree):
    partner, customer = await actors(tree)
    old = await batch_ending(partner, tree.direct, 6, NOW + timedelta(days=3650))
    await sign_in(client, tree.email("partner"))
    assert "Renewal requested" not in (await client.get("/dashboard")).text
    # Moved to end within 30 days of today (the page's clock): a batch write, a new version.
    ends = utcnow() + timedelta(days=10)
    await LicenceBatch.update({LicenceBatch.ends_at: ends}).where(LicenceBatch.id == old["id"])
    first = (await client.get("/dashboard")).text
    assert f"/dashboard/batches/{old['id']}/renew" in first and "Renewal requested" not in first
    await same_quantity.renew_same_quantity(customer, old["id"], utcnow())  # an order alone: no batch changed
    again = (await client.get("/dashboard")).text
    assert "Renewal requested" in again and f"/dashboard/batches/{old['id']}/renew" not in again


def test_saving_says_what_changed():
    before = PartnerSettings(max_order_quantity=10_000, low_seat_threshold=0)
    assert said("Acme", before, before) == (
        "Nothing changed: the free-seat alert stays at 0 and the largest order at 10,000 "
        "for Acme and the companies under it."
    )
    after = PartnerSettings(max_order_quantity=2_500, low_seat_threshold=5)
    assert said("Acme", before, after) == (
        "Free-seat alert set to 5 and Largest order set to 2,500 for Acme and the companies under it."
    )
