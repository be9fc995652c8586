"""A renewal provisions exactly what its invoice bills (a reviewer found it did not):
the tier and users are read from the invoice's lines when it is paid, by a recorded
payment or by the renewal job; a change made while the renewal invoice is unpaid
voids and reissues it in the change's transaction, so the next term's invoice is the
subscription's next term."""

from __future__ import annotations

from datetime import timedelta

from portal.domain.billing import changes, invoices, quotes, settlement, subscriptions
from portal.domain.billing.renewal import invoice_subscriptions, online
from portal.tables import LicenceBatch
from portal.tables.billing import Invoice, InvoiceLine, Subscription
from portal.web.billing import messages
from tests.support import PROCESSOR, tally_drift
from tests.test_billing_subscriptions import NOW, actors, pro, with_card


async def _paid_by_invoice(tree) -> dict:
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    first = await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    return first["subscription"]


async def _codes(invoice_id: int) -> list[tuple[str, int]]:
    lines = await InvoiceLine.select().where(InvoiceLine.invoice == invoice_id).order_by(InvoiceLine.position)
    return [(line["code"], line["quantity"]) for line in lines]


async def test_a_change_while_the_renewal_invoice_is_unpaid_reissues_it_and_the_quote_says_so(tree):
    customer, seller = await actors(tree)
    sub = await _paid_by_invoice(tree)
    at = sub["term_end"] - timedelta(days=20)
    renewal = await invoice_subscriptions.request_invoice(customer, sub["id"], at)
    assert renewal["total_cents"] == 6_000_00 and await _codes(renewal["id"]) == [("pro", 1)]

    quote = await quotes.quote_change(customer, sub["id"], tier="pro", extra_users=50, read_only_users=0, now=at)
    # Pro $6,000 + 50 × $30 × 12 = $24,000 for the next term.
    assert (
        "Confirming voids renewal invoice INV-00002 ($6,000.00 USD) and issues one for the next term as changed: "
        "$24,000.00 USD." in quote.notes
    )
    changed = await changes.change(
        customer, sub["id"], tier="pro", extra_users=50, read_only_users=0, now=at, processor=PROCESSOR
    )
    new = changed["renewal_invoice"]
    assert new is not None and new["replaces"] == renewal["id"] and new["total_cents"] == 24_000_00
    assert await _codes(new["id"]) == [("pro", 1), ("standard_user", 50)]
    assert (new["term_start"], new["term_end"]) == (renewal["term_start"], renewal["term_end"])
    said, _ = messages.changed(changed)
    assert said == (
        # 50 × $360 × 20 / 365 days
        "Invoice INV-00003 for $986.30 USD was issued for the change, pro rata. The renewal invoice was voided "
        "and reissued for the next term as changed: INV-00004 for $24,000.00 USD."
    )
    old = await Invoice.select().where(Invoice.id == renewal["id"]).first()
    assert (old["status"], old["void_reason"], old["idempotency_key"]) == ("void", "Replaced by INV-00004.", None)
    # Asked again, "Request an invoice" finds the reissued one (the key moved to it).
    again = await invoice_subscriptions.request_invoice(customer, sub["id"], at + timedelta(hours=1))
    assert again["id"] == new["id"]

    await settlement.record_payment(seller, changed["invoice"]["id"], method="check", reference="", now=at)
    done = await settlement.record_payment(seller, new["id"], method="check", reference="", now=at + timedelta(days=1))
    assert done["batch"]["seats"] == 60 and done["batch"]["starts_at"] == sub["term_end"]
    assert (done["subscription"]["extra_users"], done["subscription"]["next_extra_users"]) == (50, None)
    assert await tally_drift() == []


async def test_fewer_users_asked_for_reissue_the_renewal_invoice_for_fewer(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(20, "invoice", 2), NOW, processor=PROCESSOR)
    sub = (await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW))[
        "subscription"
    ]
    at = sub["term_end"] - timedelta(days=25)
    renewal = await invoice_subscriptions.request_invoice(customer, sub["id"], at)
    changed = await changes.change(
        customer, sub["id"], tier="pro", extra_users=5, read_only_users=2, now=at, processor=PROCESSOR
    )
    assert changed["invoice"] is None  # fewer: nothing to pay now
    new = changed["renewal_invoice"]
    assert await _codes(new["id"]) == [("pro", 1), ("standard_user", 5), ("read_only_user", 2)]
    # $6,000 + 5 × $360 + 2 × $60
    assert new["total_cents"] == 7_920_00 and renewal["total_cents"] == 13_320_00
    done = await settlement.record_payment(seller, new["id"], method="check", reference="", now=at)
    assert done["batch"]["seats"] == 15


async def test_a_recorded_renewal_payment_provisions_what_the_invoice_billed_not_the_counts_of_today(tree):
    customer, seller = await actors(tree)
    sub = await _paid_by_invoice(tree)
    at = sub["term_end"] - timedelta(days=20)
    renewal = await invoice_subscriptions.request_invoice(customer, sub["id"], at)
    # Whatever moved the subscription's counts after the invoice was issued, the invoice billed 10 seats.
    await Subscription.update({Subscription.extra_users: 50}).where(Subscription.id == sub["id"])
    done = await settlement.record_payment(seller, renewal["id"], method="check", reference="", now=at)
    assert done["batch"]["seats"] == 10
    assert (done["subscription"]["tier"], done["subscription"]["extra_users"]) == ("pro", 0)


async def test_the_renewal_job_provisions_what_the_invoice_it_charges_billed(tree):
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"])
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "online", 0), NOW, processor=PROCESSOR)
    sub = bought["subscription"]
    renewal = await invoice_subscriptions.request_invoice(customer, sub["id"], sub["term_end"] - timedelta(days=3))
    await Subscription.update({Subscription.extra_users: 40, Subscription.read_only_users: 3}).where(
        Subscription.id == sub["id"]
    )
    counts = await online.renew_due(sub["term_end"] - timedelta(hours=12), processor=PROCESSOR)
    assert counts["renewed"] == 1
    paid = await Invoice.select().where(Invoice.id == renewal["id"]).first()
    assert paid["status"] == "paid" and paid["total_cents"] == 6_000_00
    batch = await LicenceBatch.select().where(LicenceBatch.starts_at == sub["term_end"]).first()
    assert batch is not None and batch["seats"] == 10
    row = await Subscription.select().where(Subscription.id == sub["id"]).first()
    assert (row["extra_users"], row["read_only_users"], row["term_start"]) == (0, 0, sub["term_end"])
    assert await tally_drift() == []


async def test_a_change_paid_after_its_term_was_renewed_tops_up_the_old_term_only(tree):
    """Change invoice issued, renewal (reissued with the change) paid first, then the change:
    the next term already has the users; the change adds seats to the old term's rest, and
    counts nothing twice."""
    customer, seller = await actors(tree)
    sub = await _paid_by_invoice(tree)
    at = sub["term_end"] - timedelta(days=20)
    await invoice_subscriptions.request_invoice(customer, sub["id"], at)
    changed = await changes.change(
        customer, sub["id"], tier="pro", extra_users=50, read_only_users=0, now=at, processor=PROCESSOR
    )
    renewed = await settlement.record_payment(
        seller, changed["renewal_invoice"]["id"], method="check", reference="", now=at
    )
    assert renewed["batch"]["seats"] == 60
    topped = await settlement.record_payment(
        seller, changed["invoice"]["id"], method="check", reference="", now=at + timedelta(days=1)
    )
    assert topped["batch"]["seats"] == 50
    assert (topped["batch"]["starts_at"], topped["batch"]["ends_at"]) == (at + timedelta(days=1), sub["term_end"])
    row = topped["subscription"]
    assert (row["extra_users"], row["term_start"]) == (50, sub["term_end"])
    assert await invoices.get_invoice(customer, changed["invoice"]["id"]) is not None
