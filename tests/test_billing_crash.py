"""Nothing half-done after a crash: an online payment is charged in one
transaction and provisioned in the next. A process killed between them leaves a
paid invoice with no seats; the billing tick finds it by its missing
"provision:<invoice>" audit key and provisions it, once. Both engines."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from portal.domain.billing import changes, settlement
from portal.jobs import billing as billing_jobs
from portal.services import Services
from portal.tables import AuditEntry, LicenceBatch
from portal.tables.billing import Charge, Invoice, Subscription
from tests.support import PROCESSOR, tally_drift
from tests.test_billing_subscriptions import NOW, actors, bought_online

BEFORE_GRACE = settlement.MISSED_AFTER - timedelta(minutes=1)


class Killed(Exception):
    """The process dies after the charge's transaction committed."""


def crash_after_charge(monkeypatch) -> None:
    """Provisioning after a charge dies; monkeypatch.undo() brings the real one back."""

    async def killed(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(settlement, "provision_invoice", killed)


async def tick(monkeypatch, at: datetime) -> dict[str, int]:
    monkeypatch.setattr(billing_jobs, "utcnow", lambda: at)
    return await billing_jobs.billing_tick({"job_id": None, "services": Services(PROCESSOR)})


async def provision_keys() -> list[str]:
    rows = await AuditEntry.select(AuditEntry.dedupe_key).where(AuditEntry.action == "subscription.provision")
    return sorted(r["dedupe_key"] for r in rows)


async def test_a_purchase_charged_but_not_provisioned_is_provisioned_by_the_tick_from_its_payment_date(
    tree, monkeypatch
):
    crash_after_charge(monkeypatch)
    with pytest.raises(Killed):
        await bought_online(tree)
    monkeypatch.undo()
    (invoice,) = await Invoice.select().where(Invoice.company == tree.north["id"])
    (charge,) = await Charge.select()
    sub = await Subscription.select().where(Subscription.company == tree.north["id"]).first()
    # What the crash left: paid, charged once, nothing provisioned.
    assert (invoice["status"], invoice["paid_at"], charge["status"]) == ("paid", NOW, "succeeded")
    assert (sub["status"], sub["batch"], await LicenceBatch.count(), await provision_keys()) == ("pending", None, 0, [])

    # While the paying request may still be at it, the tick leaves the invoice alone.
    assert (await tick(monkeypatch, NOW + BEFORE_GRACE))["provisioned_missed"] == 0
    assert await LicenceBatch.count() == 0

    later = NOW + settlement.MISSED_AFTER
    assert (await tick(monkeypatch, later))["provisioned_missed"] == 1
    (batch,) = await LicenceBatch.select()
    sub = await Subscription.select().where(Subscription.id == sub["id"]).first()
    # The term runs from the payment, not from when the tick found it.
    assert (sub["status"], sub["term_start"], sub["batch"]) == ("active", NOW, batch["id"])
    assert (batch["seats"], batch["starts_at"], batch["ends_at"]) == (30, NOW, sub["term_end"])
    assert await provision_keys() == [f"provision:{invoice['id']}"]
    assert (await Invoice.select(Invoice.order).where(Invoice.id == invoice["id"]).first())["order"] == batch["order"]

    # Again: nothing more, and the processor was asked once.
    assert (await tick(monkeypatch, later + timedelta(minutes=5)))["provisioned_missed"] == 0
    assert (await LicenceBatch.count(), await Charge.count()) == (1, 1)
    assert await tally_drift() == []


async def test_a_change_charged_but_not_provisioned_gets_its_added_seats_from_the_tick(tree, monkeypatch):
    bought = await bought_online(tree)
    customer, _ = await actors(tree)
    mid = NOW + timedelta(days=100)
    crash_after_charge(monkeypatch)
    with pytest.raises(Killed):
        await changes.change(
            customer,
            bought["subscription"]["id"],
            tier="pro",
            extra_users=25,
            read_only_users=2,
            now=mid,
            processor=PROCESSOR,
        )
    monkeypatch.undo()
    change = await Invoice.select().where(Invoice.kind == "change").first()
    assert change["status"] == "paid" and await LicenceBatch.count() == 1

    assert (await tick(monkeypatch, mid + settlement.MISSED_AFTER))["provisioned_missed"] == 1
    added = await LicenceBatch.select().where(LicenceBatch.id != bought["batch"]["id"]).first()
    sub = await Subscription.select().where(Subscription.id == bought["subscription"]["id"]).first()
    assert (added["seats"], added["starts_at"], added["ends_at"]) == (5, mid, sub["term_end"])
    assert sub["extra_users"] == 25
    assert (await tick(monkeypatch, mid + timedelta(hours=1)))["provisioned_missed"] == 0
    assert await LicenceBatch.count() == 2
