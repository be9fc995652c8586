"""Renewals that run by themselves: online subscriptions charged and
provisioned once per term, retried and lapsed; invoice subscriptions invoiced
30 days ahead and reminded at 72 hours; cancelled ones never renew. Both engines.

Subscriptions are written here as buying leaves them (an active term, its
batch, seat holders, a saved card), so these tests depend on renewals only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from portal import db
from portal.domain.access import load_actor
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import changes, invoices, payments, profiles, settlement
from portal.domain.billing.money import term_end
from portal.domain.billing.renewal import chunk, invoice_subscriptions, lapse, next_term, online, schedule
from portal.domain.catalogue import PREMIUM, product_by_code
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.licences.status import licence_status
from portal.jobs import billing as billing_jobs
from portal.services import Services
from portal.tables import Allocation, AuditEntry, LicenceBatch, LicenceOrder, OutboxEmail, User
from portal.tables.billing import BillingAccount, Charge, Invoice, InvoiceLine, Subscription
from tests.factories import add_user
from tests.support import PROCESSOR

END = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)  # the running term's end
DUE = END - timedelta(hours=12)


@pytest.fixture
def processor():
    """A fresh test processor that counts what it is asked."""
    new = payments.TestProcessor()
    return new


async def card_token(number: str = payments.ACCEPTED) -> str:
    card = payments.CardDetails(number=number, exp_month=12, exp_year=2031, cvc="123")
    return (await payments.TestProcessor().save_card(card)).token


async def subscribe(
    company: dict,
    *,
    end: datetime = END,
    method: str = "online",
    card: str | None = payments.ACCEPTED,
    tier: str = "pro",
    extra_users: int = 2,
    read_only_users: int = 1,
    holders: int = 3,
    auto_renew: bool = True,
) -> dict:
    """An active subscription in its term as buying leaves it: a batch of the
    tier's users plus extra ones, `holders` learners on it, a saved card."""
    seller = company["parent"]
    items = {i["code"]: i for i in await billing_catalogue.items(seller)}
    await profiles.profile(seller)
    start = end - timedelta(days=365)
    seats = items[tier]["included_users"] + extra_users
    premium = (await product_by_code(PREMIUM))["id"]
    order = await LicenceOrder.insert(
        LicenceOrder(
            company=company["id"],
            company_path=company["path"],
            product=premium,
            quantity=seats,
            status="assigned",
            requested_at=start,
            decided_at=start,
        )
    ).returning(LicenceOrder.id)
    batch = await LicenceBatch.insert(
        LicenceBatch(
            order=order[0]["id"],
            company=company["id"],
            product=premium,
            seats=seats,
            allocated=holders,
            starts_at=start,
            ends_at=end,
        )
    ).returning(LicenceBatch.id)
    for n in range(holders):
        user = await add_user(company, f"learner{n}.c{company['id']}.{end:%Y%m%d}@example.com", role="learner")
        await Allocation.insert(
            Allocation(batch=batch[0]["id"], user=user["id"], allocated_at=start, starts_at=start, ends_at=end)
        )
        await User.update({User.licence_ends_at: end}).where(User.id == user["id"])
    if card is not None:
        await BillingAccount.insert(
            BillingAccount(company=company["id"], card_token=await card_token(card), card_last4=card[-4:])
        )
    sub = await Subscription.insert(
        Subscription(
            company=company["id"],
            company_path=company["path"],
            partner=seller,
            tier=tier,
            extra_users=extra_users,
            read_only_users=read_only_users,
            method=method,
            status="active",
            auto_renew=auto_renew,
            term_start=start,
            term_end=end,
            batch=batch[0]["id"],
        )
    ).returning(*Subscription.all_columns())
    return sub[0]


async def reload(sub: dict) -> dict:
    row = await Subscription.select().where(Subscription.id == sub["id"]).first()
    assert row is not None
    return row


async def renewal_invoices(sub: dict) -> list[dict]:
    return await Invoice.select().where(Invoice.subscription == sub["id"]).order_by(Invoice.id)


async def charges() -> list[dict]:
    return await Charge.select().order_by(Charge.id)


async def batches_of(company: dict) -> list[dict]:
    return await LicenceBatch.select().where(LicenceBatch.company == company["id"]).order_by(LicenceBatch.id)


async def mails(kind: str) -> list[dict]:
    return await OutboxEmail.select().where(OutboxEmail.kind == kind).order_by(OutboxEmail.id)


# --- Online: renewed once per term ------------------------------------------------------


async def test_online_subscription_renews_a_day_before_its_end_with_its_seat_holders(tree, processor):
    sub = await subscribe(tree.direct)
    assert await online.renew_due(END - timedelta(days=1, seconds=1), processor=processor) == {
        "claimed": 0,
        "renewed": 0,
        "declined": 0,
        "lapsed": 0,
        "pending": 0,
        "released": 0,
    }
    assert await online.count_due(DUE) == 1
    done = await online.renew_due(DUE, processor=processor)
    assert done == {"claimed": 1, "renewed": 1, "declined": 0, "lapsed": 0, "pending": 0, "released": 0}

    (invoice,) = await renewal_invoices(sub)
    # Pro $6,000 + 2 extra users × 12 × $30 + 1 read-only × 12 × $5; tax 0 %.
    assert (invoice["kind"], invoice["status"], invoice["number"], invoice["total_cents"]) == (
        "renewal",
        "paid",
        1,
        6_000_00 + 2 * 12 * 30_00 + 12 * 5_00,
    )
    assert (invoice["term_start"], invoice["term_end"], invoice["payment_method"]) == (END, term_end(END), "card")
    assert invoice["idempotency_key"] == schedule.renewal_key(sub)
    lines = await InvoiceLine.select(InvoiceLine.code, InvoiceLine.quantity, InvoiceLine.amount_cents).where(
        InvoiceLine.invoice == invoice["id"]
    )
    assert sum(line["amount_cents"] for line in lines) == invoice["subtotal_cents"]
    assert [line["code"] for line in lines] == ["pro", "standard_user", "read_only_user"]
    (charge,) = await charges()
    assert (charge["invoice"], charge["attempt"], charge["status"], charge["amount_cents"]) == (
        invoice["id"],
        1,
        "succeeded",
        invoice["total_cents"],
    )
    assert invoice["payment_reference"] == charge["processor_ref"]
    assert processor.calls == [f"{invoice['id']}:1"]

    old, new = await batches_of(tree.direct)
    assert (new["starts_at"], new["ends_at"], new["seats"], new["allocated"]) == (END, term_end(END), 12, 3)
    order = await LicenceOrder.select().where(LicenceOrder.id == new["order"]).first()
    assert order is not None and (order["status"], order["quantity"], order["po_number"]) == (
        "assigned",
        12,
        "INV-00001",
    )
    assert invoice["order"] == new["order"]
    carried = await Allocation.select().where(Allocation.batch == new["id"])
    assert sorted((a["starts_at"], a["ends_at"]) for a in carried) == [(END, term_end(END))] * 3
    holders = await User.select(User.licence_ends_at).where(User.role == "learner")
    assert [u["licence_ends_at"] for u in holders] == [term_end(END)] * 3
    assert licence_status(term_end(END), END + timedelta(days=1)) == "active"  # no gap at the old end

    now = await reload(sub)
    assert (now["term_start"], now["term_end"], now["batch"], now["renewal_attempts"], now["next_charge_at"]) == (
        END,
        term_end(END),
        new["id"],
        0,
        None,
    )
    (mail,) = await mails("subscription_renewed")
    assert mail["to_email"] == tree.email("direct")
    assert mail["subject"] == "Your Pro license is renewed until 10 Mar 2028"
    assert "INV-00001 from Acme MSP: $6,780.00 USD, paid by the card ending 4242" in mail["body"]
    actions = [e["action"] for e in await AuditEntry.select(AuditEntry.action).order_by(AuditEntry.id)]
    assert actions == ["invoice.issue", "subscription.provision", "invoice.charged", "invoice.paid"]

    # Run again the same day, and the next: nothing more.
    for later in (DUE, DUE + timedelta(hours=1), END + timedelta(days=1)):
        assert (await online.renew_due(later, processor=processor))["claimed"] == 0
    assert len(await renewal_invoices(sub)) == 1 and len(await charges()) == 1
    assert len(await batches_of(tree.direct)) == 2 and processor.calls == [f"{invoice['id']}:1"]


async def test_each_seller_numbers_its_renewal_invoices_without_gaps(tree, processor):
    direct = await subscribe(tree.direct)
    north = await subscribe(tree.north, end=END - timedelta(hours=1))
    other = await subscribe(tree.other_customer, end=END + timedelta(hours=1))
    assert (await online.renew_due(DUE, limit=2, processor=processor))["renewed"] == 2
    assert (await online.renew_due(DUE, limit=2, processor=processor))["renewed"] == 1
    numbers = {(i["partner"], i["number"]) for s in (direct, north, other) for i in await renewal_invoices(s)}
    assert numbers == {(tree.partner["id"], 1), (tree.sub["id"], 1), (tree.other["id"], 1)}
    # A later one of the same customer (its card already saved): the seller's next number.
    sub_north = await subscribe(tree.north, end=END + timedelta(days=365), card=None)
    await Subscription.update({Subscription.status: "ended"}).where(Subscription.id == north["id"])
    await online.renew_due(END + timedelta(days=365) - timedelta(hours=1), processor=processor)
    assert [i["number"] for i in await renewal_invoices(sub_north)] == [2]


async def test_a_term_ending_on_29_february_renews_to_28_february(tree, processor):
    leap_end = datetime(2028, 2, 29, 9, 0, tzinfo=UTC)
    sub = await subscribe(tree.direct, end=leap_end)
    await online.renew_due(leap_end - timedelta(hours=2), processor=processor)
    renewed = await reload(sub)
    assert renewed["term_end"] == datetime(2029, 2, 28, 9, 0, tzinfo=UTC)
    new = (await batches_of(tree.direct))[-1]
    assert (new["starts_at"], new["ends_at"]) == (leap_end, datetime(2029, 2, 28, 9, 0, tzinfo=UTC))
    await online.renew_due(datetime(2029, 2, 28, 8, 0, tzinfo=UTC), processor=processor)
    assert (await reload(sub))["term_end"] == datetime(2030, 2, 28, 9, 0, tzinfo=UTC)


async def test_fewer_users_take_effect_at_renewal_first_allocated_keep_their_seats(tree, processor):
    sub = await subscribe(tree.direct, tier="lite", extra_users=3, holders=7)
    await Subscription.update({Subscription.next_extra_users: 0, Subscription.next_read_only_users: 0}).where(
        Subscription.id == sub["id"]
    )
    await online.renew_due(DUE, processor=processor)
    (invoice,) = await renewal_invoices(sub)
    assert invoice["total_cents"] == 3_000_00  # Lite alone
    new = (await batches_of(tree.direct))[-1]
    assert (new["seats"], new["allocated"]) == (5, 5)
    kept = await Allocation.select(Allocation.user.email).where(Allocation.batch == new["id"])
    assert sorted(a["user.email"] for a in kept) == [
        f"learner{n}.c{tree.direct['id']}.20270310@example.com" for n in range(5)
    ]
    renewed = await reload(sub)
    assert (renewed["extra_users"], renewed["read_only_users"], renewed["next_extra_users"]) == (0, 0, None)


# --- Idempotency: a retried job ----------------------------------------------------


async def test_a_job_that_dies_after_the_processor_answered_charges_once_when_retried(tree, processor, monkeypatch):
    sub = await subscribe(tree.direct)
    real_record = next_term.record

    async def dies(now, renewals):
        raise ConnectionError("worker lost the database")

    monkeypatch.setattr(next_term, "record", dies)
    with pytest.raises(ConnectionError):
        await online.renew_due(DUE, processor=processor)
    monkeypatch.setattr(next_term, "record", real_record)
    (invoice,) = await renewal_invoices(sub)
    (charge,) = await charges()
    assert (invoice["status"], charge["status"]) == ("issued", "pending")
    # Retried at once: the chunk is still claimed (its lease), so nothing is asked twice.
    assert (await online.renew_due(DUE, processor=processor))["claimed"] == 0
    assert (await online.renew_due(DUE + schedule.LEASE - timedelta(seconds=1), processor=processor))["claimed"] == 0
    # Once the lease is over: the same attempt, asked again with its key (the processor charges a key once).
    done = await online.renew_due(DUE + schedule.LEASE, processor=processor)
    assert done["renewed"] == 1
    assert processor.calls == [f"{invoice['id']}:1", f"{invoice['id']}:1"]
    assert [(c["attempt"], c["status"]) for c in await charges()] == [(1, "succeeded")]
    assert [i["status"] for i in await renewal_invoices(sub)] == ["paid"]
    assert len(await batches_of(tree.direct)) == 2
    assert len(await mails("subscription_renewed")) == 1


async def test_a_chunk_asks_its_cards_a_few_at_a_time(tree, monkeypatch):
    """A processor across the network answers in a fraction of a second: a chunk asks
    ASK_AT_ONCE cards at once, not 500 one after another, and each once."""

    class Counting(payments.TestProcessor):
        def __init__(self) -> None:
            super().__init__()
            self.asking = self.most = 0

        async def charge(self, token, amount_cents, currency, idempotency_key):
            self.asking += 1
            self.most = max(self.most, self.asking)
            await asyncio.sleep(0)  # the answer is on its way: the others go on meanwhile
            self.asking -= 1
            return await super().charge(token, amount_cents, currency, idempotency_key)

    monkeypatch.setattr(online, "ASK_AT_ONCE", 2)
    subs = [await subscribe(c) for c in (tree.direct, tree.north, tree.other_customer)]
    counting = Counting()
    assert (await online.renew_due(DUE, processor=counting))["renewed"] == 3
    assert counting.most == 2
    invoices_ = [i for s in subs for i in await renewal_invoices(s)]
    assert sorted(counting.calls) == sorted(f"{i['id']}:1" for i in invoices_)
    assert [i["status"] for i in invoices_] == ["paid"] * 3


async def test_cards_not_asked_in_the_chunks_time_are_released_and_asked_once_by_the_next_chunk(tree, processor):
    """A chunk stops asking after `ask_for_s` (the job's, well inside arq's timeout):
    the rest are neither declined nor left to the lease, but due again at once and
    asked by the next chunk with the same keys."""
    subs = [await subscribe(c) for c in (tree.direct, tree.north)]
    done = await online.renew_due(DUE, processor=processor, ask_for_s=0)
    assert (done["claimed"], done["released"], done["pending"], done["renewed"], processor.calls) == (2, 2, 0, 0, [])
    assert [c["status"] for c in await charges()] == ["pending", "pending"]
    assert [i["status"] for s in subs for i in await renewal_invoices(s)] == ["issued", "issued"]
    again = await online.renew_due(DUE + timedelta(seconds=1), processor=processor, ask_for_s=60)
    assert (again["claimed"], again["renewed"], again["released"]) == (2, 2, 0)
    keys = sorted(c["idempotency_key"] for c in await charges())
    assert sorted(processor.calls) == keys and [k.endswith(":1") for k in keys] == [True, True]
    assert [c["status"] for c in await charges()] == ["succeeded", "succeeded"]
    assert [i["status"] for s in subs for i in await renewal_invoices(s)] == ["paid", "paid"]
    assert (await online.renew_due(DUE + timedelta(seconds=2), processor=processor))["claimed"] == 0


async def test_a_chunk_taken_over_after_its_lease_is_written_once(tree, processor):
    """A slow worker whose lease ran out, and the worker that took its chunk over,
    both finish: the term is provisioned once."""
    sub = await subscribe(tree.direct)
    slow = await online._claim(DUE, 10)
    fast = await online.renew_due(DUE + schedule.LEASE, processor=processor)
    assert fast["renewed"] == 1
    for r in slow:
        r.outcome, r.reference = "paid", "ch_slow"
    await next_term.record(DUE + schedule.LEASE + timedelta(minutes=1), slow)
    assert len(await batches_of(tree.direct)) == 2
    assert [c["status"] for c in await charges()] == ["succeeded"]
    assert (await reload(sub))["term_end"] == term_end(END)


# --- Declined: three retries in seven days, then lapsed ----------------------------


async def test_three_declines_after_the_first_lapse_it_managers_emailed_each_time(tree, processor):
    await add_user(tree.direct, "second@direct.example")
    sub = await subscribe(tree.direct, card=payments.CHARGES_DECLINED)
    assert (await online.renew_due(DUE, processor=processor))["declined"] == 1
    sub_now = await reload(sub)
    assert (sub_now["status"], sub_now["renewal_attempts"], sub_now["next_charge_at"]) == (
        "active",
        1,
        END + timedelta(days=2),
    )
    failed = await mails("renewal_charge_failed")
    assert sorted(m["to_email"] for m in failed) == sorted([tree.email("direct"), "second@direct.example"])
    assert "Your card was declined." in failed[0]["body"]
    assert "We will try the card again on 12 Mar 2027" in failed[0]["body"]

    # Not before its retry date; then at +2, +4 and +7 days.
    assert (await online.renew_due(END + timedelta(days=1), processor=processor))["claimed"] == 0
    assert (await online.renew_due(END + timedelta(days=2), processor=processor))["declined"] == 1
    assert (await reload(sub))["next_charge_at"] == END + timedelta(days=4)
    assert (await online.renew_due(END + timedelta(days=4), processor=processor))["declined"] == 1
    assert (await reload(sub))["next_charge_at"] == END + timedelta(days=7)
    assert (await online.renew_due(END + timedelta(days=7), processor=processor))["lapsed"] == 1

    lapsed = await reload(sub)
    assert (lapsed["status"], lapsed["renewal_attempts"], lapsed["term_end"]) == ("lapsed", 4, END)
    (invoice,) = await renewal_invoices(sub)
    assert invoice["status"] == "issued"
    assert [(c["attempt"], c["status"]) for c in await charges()] == [(n, "declined") for n in (1, 2, 3, 4)]
    assert processor.calls == [f"{invoice['id']}:{n}" for n in (1, 2, 3, 4)]
    assert len(await mails("renewal_charge_failed")) == 3 * 2
    retry_days = ["12 Mar 2027", "14 Mar 2027", "17 Mar 2027"]
    bodies = [m["body"] for m in await mails("renewal_charge_failed") if m["to_email"] == tree.email("direct")]
    assert [day for body in bodies for day in retry_days if f"again on {day}" in body] == retry_days
    (lapse_mail, _) = await mails("subscription_lapsed")
    assert "ended on 10 Mar 2027" in lapse_mail["body"]
    # Its seats stopped at the term's end: no batch for a next term.
    assert len(await batches_of(tree.direct)) == 1
    ends = await User.select(User.licence_ends_at).where(User.role == "learner")
    assert {licence_status(u["licence_ends_at"], END + timedelta(seconds=1)) for u in ends} == {"expired"}
    assert (await online.renew_due(END + timedelta(days=30), processor=processor))["claimed"] == 0
    assert await lapse.lapse_unpaid(END + timedelta(days=30)) == 0


async def test_a_card_replaced_after_a_decline_pays_on_the_retry_with_no_gap(tree, processor):
    sub = await subscribe(tree.direct, card=payments.CHARGES_DECLINED)
    await online.renew_due(DUE, processor=processor)
    await BillingAccount.update({BillingAccount.card_token: await card_token()}).where(
        BillingAccount.company == tree.direct["id"]
    )
    assert (await online.renew_due(END + timedelta(days=2), processor=processor))["renewed"] == 1
    assert [(c["attempt"], c["status"]) for c in await charges()] == [(1, "declined"), (2, "succeeded")]
    new = (await batches_of(tree.direct))[-1]
    assert (new["starts_at"], new["ends_at"]) == (END, term_end(END))  # from the old end, not from the payment
    assert (await reload(sub))["status"] == "active"


async def test_without_a_saved_card_the_renewal_is_declined_without_asking_the_processor(tree, processor):
    sub = await subscribe(tree.direct, card=None)
    assert (await online.renew_due(DUE, processor=processor))["declined"] == 1
    assert [(c["status"], c["decline_reason"]) for c in await charges()] == [("declined", chunk.NO_CARD)]
    assert processor.calls == []
    assert (await reload(sub))["next_charge_at"] == END + timedelta(days=2)


# --- Cancelled, paid early, lapsed ------------------------------------------------------


async def test_a_cancelled_subscription_never_renews_and_ends_at_its_end(tree, processor):
    sub = await subscribe(tree.direct, auto_renew=False)
    for moment in (DUE, END - timedelta(seconds=1)):
        assert (await online.renew_due(moment, processor=processor))["claimed"] == 0
        assert await lapse.lapse_unpaid(moment) == 0
    assert await lapse.lapse_unpaid(END) == 1
    assert (await reload(sub))["status"] == "ended"
    assert (await online.renew_due(END + timedelta(days=7), processor=processor))["claimed"] == 0
    assert await renewal_invoices(sub) == [] and await charges() == [] and processor.calls == []
    assert len(await batches_of(tree.direct)) == 1
    assert await mails("subscription_lapsed") == []


async def test_an_online_renewal_paid_early_is_not_charged_and_starts_at_the_old_end(tree, processor):
    """ "Request an invoice" and pay early: the job finds the paid invoice under
    the renewal key and only provisions the term, from the old end."""
    sub = await subscribe(tree.direct)
    early = END - timedelta(days=20)
    invoice = await invoices.create_invoice(
        partner_id=tree.partner["id"],
        company_id=tree.direct["id"],
        kind="renewal",
        lines=[invoices.Line("pro", "Pro annual licence", 1, 6_000_00)],
        now=early,
        subscription_id=sub["id"],
        term_start=END,
        term_end=term_end(END),
        idempotency_key=schedule.renewal_key(sub),
    )
    await invoices.mark_paid(invoice["id"], method="bank_transfer", reference="BT-1", now=early, recorded_by=None)
    assert (await online.renew_due(DUE, processor=processor))["renewed"] == 1
    assert processor.calls == [] and await charges() == []
    assert [(i["id"], i["status"]) for i in await renewal_invoices(sub)] == [(invoice["id"], "paid")]
    new = (await batches_of(tree.direct))[-1]
    assert (new["starts_at"], new["ends_at"]) == (END, term_end(END))
    assert (await Invoice.select(Invoice.order).where(Invoice.id == invoice["id"]).first()) == {"order": new["order"]}


async def test_request_an_invoice_paid_early_leaves_no_gap_and_nothing_for_the_job(tree, processor):
    """The customer's "Request an invoice", the partner records a bank transfer
    20 days early: the next term starts at the old end; the job has nothing to do."""
    sub = await subscribe(tree.direct)
    early = END - timedelta(days=20)
    customer = await load_actor(tree.managers["direct"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    assert customer is not None and partner is not None
    invoice = await invoice_subscriptions.request_invoice(customer, sub["id"], early)
    await settlement.record_payment(partner, invoice["id"], method="bank_transfer", reference="BT-7", now=early)
    assert (await online.renew_due(DUE, processor=processor))["claimed"] == 0
    assert await lapse.lapse_unpaid(END) == 0
    assert processor.calls == [] and await charges() == []
    assert [i["id"] for i in await renewal_invoices(sub)] == [invoice["id"]]
    old, new = await batches_of(tree.direct)
    assert (new["starts_at"], new["ends_at"], old["ends_at"]) == (END, term_end(END), END)
    assert ((await reload(sub))["status"], (await reload(sub))["term_end"]) == ("active", term_end(END))


async def test_a_renewal_paid_by_invoice_keeps_the_users_added_mid_term(tree):
    """Users added during the term hold seats of another batch ending at the same
    instant; paying the renewal invoice carries them over as the job would."""
    sub = await subscribe(tree.direct, method="invoice", card=None)  # Pro: 12 seats, 3 holders
    customer = await load_actor(tree.managers["direct"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    assert customer is not None and partner is not None
    mid = END - timedelta(days=100)
    changed = await changes.change(
        customer, sub["id"], tier="pro", extra_users=4, read_only_users=1, now=mid, processor=PROCESSOR
    )
    await settlement.record_payment(partner, changed["invoice"]["id"], method="check", reference="CHK-2", now=mid)
    added = (await batches_of(tree.direct))[-1]
    assert (added["seats"], added["ends_at"]) == (2, END)
    newcomers = [await add_user(tree.direct, f"new{n}@direct.example", role="learner") for n in range(2)]
    await allocation.allocate(
        customer, tree.direct["id"], Selection(user_ids=tuple(u["id"] for u in newcomers)), mid, batch_id=added["id"]
    )

    invoice = await invoice_subscriptions.request_invoice(customer, sub["id"], END - timedelta(days=10))
    await settlement.record_payment(
        partner, invoice["id"], method="bank_transfer", reference="BT-9", now=END - timedelta(days=5)
    )
    new = (await batches_of(tree.direct))[-1]
    assert (new["starts_at"], new["ends_at"], new["seats"], new["allocated"]) == (END, term_end(END), 14, 5)
    carried = await Allocation.select(Allocation.user).where(Allocation.batch == new["id"])
    learners = await User.select(User.id, User.licence_ends_at).where(User.role == "learner")
    assert sorted(a["user"] for a in carried) == sorted(u["id"] for u in learners)
    assert {u["licence_ends_at"] for u in learners} == {term_end(END)}


async def test_a_renewal_the_job_provisioned_is_not_provisioned_again_by_a_payment_path(tree, processor):
    sub = await subscribe(tree.direct)
    await online.renew_due(DUE, processor=processor)
    (invoice,) = await renewal_invoices(sub)
    async with db.write_transaction():
        assert await settlement.provision_invoice(invoice["id"], DUE + timedelta(minutes=1)) is None
    assert len(await batches_of(tree.direct)) == 2


async def test_an_invoice_subscription_paid_before_its_end_does_not_lapse(tree):
    sub = await subscribe(tree.direct, method="invoice", card=None)
    await invoice_subscriptions.issue_renewal_invoices(END - timedelta(days=30))
    (invoice,) = await renewal_invoices(sub)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    assert partner is not None
    paid_on = END - timedelta(days=3)
    await settlement.record_payment(partner, invoice["id"], method="check", reference="CHK-1", now=paid_on)
    assert await lapse.lapse_unpaid(END) == 0
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(hours=1)) == {"issued": 0, "reminded": 0}
    assert ((await reload(sub))["status"], (await reload(sub))["term_start"]) == ("active", END)
    new = (await batches_of(tree.direct))[-1]
    assert (new["starts_at"], new["ends_at"]) == (END, term_end(END))  # from the old end, not the payment date


async def test_invoice_subscription_gets_its_renewal_invoice_30_days_ahead_and_one_reminder(tree):
    sub = await subscribe(tree.direct, method="invoice", card=None)
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(days=31)) == {"issued": 0, "reminded": 0}
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(days=30)) == {"issued": 1, "reminded": 0}
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(days=29)) == {"issued": 0, "reminded": 0}
    (invoice,) = await renewal_invoices(sub)
    assert (invoice["status"], invoice["kind"], invoice["due_at"], invoice["term_start"]) == (
        "issued",
        "renewal",
        END,
        END,
    )
    (issued_mail,) = await mails("renewal_invoice")
    assert issued_mail["subject"] == "Renewal invoice INV-00001 for the licenses of Direct Customer"
    assert "$6,780.00 USD" in issued_mail["body"] and f"/invoices/{invoice['id']}" in issued_mail["body"]
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(hours=73)) == {"issued": 0, "reminded": 0}
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(hours=72)) == {"issued": 0, "reminded": 1}
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(hours=1)) == {"issued": 0, "reminded": 0}
    (reminder,) = await mails("renewal_invoice_reminder")
    assert reminder["subject"].startswith("Reminder: the licenses of Direct Customer end on 10 Mar 2027")
    # Online subscriptions are never invoiced this way (the renewal job charges them).
    assert (await online.renew_due(DUE, processor=PROCESSOR))["claimed"] == 0


async def test_a_paid_renewal_invoice_is_not_reminded(tree):
    sub = await subscribe(tree.direct, method="invoice", card=None)
    await invoice_subscriptions.issue_renewal_invoices(END - timedelta(days=30))
    (invoice,) = await renewal_invoices(sub)
    await invoices.mark_paid(
        invoice["id"], method="check", reference="CHK-9", now=END - timedelta(days=5), recorded_by=None
    )
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(hours=72)) == {"issued": 0, "reminded": 0}


async def test_an_unpaid_invoice_subscription_lapses_at_its_end_and_its_seats_stop(tree):
    sub = await subscribe(tree.direct, method="invoice", card=None)
    await invoice_subscriptions.issue_renewal_invoices(END - timedelta(days=30))
    assert await lapse.lapse_unpaid(END - timedelta(seconds=1)) == 0
    assert await lapse.lapse_unpaid(END) == 1
    assert await lapse.lapse_unpaid(END + timedelta(days=1)) == 0
    assert (await reload(sub))["status"] == "lapsed"
    (mail,) = await mails("subscription_lapsed")
    assert mail["to_email"] == tree.email("direct") and "The renewal invoice was not paid." in mail["body"]
    assert len(await batches_of(tree.direct)) == 1
    ends = await User.select(User.licence_ends_at).where(User.role == "learner")
    assert {licence_status(u["licence_ends_at"], END) for u in ends} == {"expired"}
    assert {licence_status(u["licence_ends_at"], END - timedelta(seconds=1)) for u in ends} == {"expiring"}
    actions = [
        e["action"] for e in await AuditEntry.select(AuditEntry.action).where(AuditEntry.action.like("subscription%"))
    ]
    assert actions == ["subscription.lapse"]


async def test_a_pending_cancellation_request_stops_the_renewal_invoice(tree):
    sub = await subscribe(tree.direct, method="invoice", card=None)
    await Subscription.update({Subscription.cancel_requested_at: END - timedelta(days=40)}).where(
        Subscription.id == sub["id"]
    )
    assert await invoice_subscriptions.issue_renewal_invoices(END - timedelta(days=30)) == {"issued": 0, "reminded": 0}


# --- The job without Redis --------------------------------------------------------------


async def test_the_tick_without_redis_renews_invoices_and_lapses(tree, processor, monkeypatch):
    online = await subscribe(tree.direct)
    by_invoice = await subscribe(tree.north, method="invoice", card=None)
    cancelled = await subscribe(tree.other_customer, auto_renew=False, end=DUE - timedelta(hours=1))
    monkeypatch.setattr(billing_jobs, "utcnow", lambda: DUE)
    counts = await billing_jobs.billing_tick({"job_id": None, "services": Services(processor)})
    assert counts == {
        "provisioned_missed": 0,
        "stripe_events_taken_up": 0,
        "refunds_sent": 0,
        "claimed": 1,
        "renewed": 1,
        "declined": 0,
        "lapsed": 0,
        "pending": 0,
        "released": 0,
        "issued": 1,
        "reminded": 1,
        "ended_or_lapsed": 1,
    }
    assert (await reload(online))["term_end"] == term_end(END)
    assert [i["kind"] for i in await renewal_invoices(by_invoice)] == ["renewal"]
    assert (await reload(cancelled))["status"] == "ended"
    again = await billing_jobs.billing_tick({"job_id": None, "services": Services(processor)})
    assert (again["claimed"], again["issued"], again["reminded"], again["ended_or_lapsed"]) == (0, 0, 0, 0)
