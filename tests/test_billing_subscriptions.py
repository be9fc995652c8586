"""Subscriptions (seed 000): buy online or by invoice, record payments, change,
cancel, one live subscription per company, wings and read-only managers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from portal.domain.access import Actor, load_actor
from portal.domain.billing import (
    accounts,
    cancellation,
    changes,
    invoices,
    profiles,
    quotes,
    settlement,
    subscription_list,
    subscriptions,
)
from portal.domain.billing.payments import CardDetails
from portal.domain.billing.quotes import Purchase
from portal.domain.billing.renewal import invoice_subscriptions
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions
from portal.tables import Allocation, AuditEntry, LicenceBatch, LicenceOrder, OutboxEmail, User
from portal.tables.billing import Charge, Invoice, Subscription
from tests.factories import add_user
from tests.support import PROCESSOR, card_token, tally_drift

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
GOOD_CARD = CardDetails("4242 4242 4242 4242", 4, 2030, "123")
DECLINING_CARD = CardDetails("4000 0000 0000 0341", 4, 2030, "123")
ADDRESS = {
    "billing_name": "North Customer Ltd",
    "billing_email": "ap@north.example",
    "address": "1 Main St",
    "country": "US",
}


async def actors(tree) -> tuple[Actor, Actor]:
    """North Customer's manager, and the manager of its seller (the sub-partner Acme North)."""
    customer = await load_actor(tree.managers["north"]["id"], None)
    seller = await load_actor(tree.managers["sub"]["id"], None)
    assert customer is not None and seller is not None
    return customer, seller


async def with_card(actor: Actor, company_id: int, card: CardDetails = GOOD_CARD) -> None:
    await accounts.create_online_billing_account(
        actor, company_id, payment_method=await card_token(card), now=NOW, **ADDRESS, processor=PROCESSOR
    )


def pro(extra: int = 20, method: str = "online", read_only: int = 2, addons: tuple[str, ...] = ()) -> Purchase:
    return Purchase(tier="pro", extra_users=extra, read_only_users=read_only, addons=addons, method=method)


async def bought_online(tree, extra: int = 20, at: datetime = NOW) -> dict:
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"])
    return await subscriptions.buy(customer, tree.north["id"], pro(extra), at, processor=PROCESSOR)


async def test_buy_online_with_the_test_card_provisions_one_batch_for_a_year(tree):
    result = await bought_online(tree)
    sub, invoice, batch = result["subscription"], result["invoice"], result["batch"]
    assert result["charge"].ok is True
    assert sub["status"] == "active" and sub["method"] == "online" and sub["auto_renew"] is True
    assert sub["term_start"] == NOW and sub["term_end"] == datetime(2027, 3, 10, 14, 30, tzinfo=UTC)
    # Pro includes 10 standard users; 20 extra: 30 seats, one assigned order and batch.
    assert (batch["seats"], batch["starts_at"], batch["ends_at"]) == (30, NOW, sub["term_end"])
    assert sub["batch"] == batch["id"]
    order = await LicenceOrder.select().where(LicenceOrder.id == batch["order"]).first()
    assert (order["status"], order["quantity"], order["company"]) == ("assigned", 30, tree.north["id"])
    # $6,000 + 20 × 12 × $30 + 2 × 12 × $5 = $13,320.00
    assert (invoice["status"], invoice["total_cents"], invoice["order"]) == ("paid", 1_332_000, order["id"])
    assert await subscriptions.read_only_allowance(tree.north["id"]) == 2
    ready = await OutboxEmail.select(OutboxEmail.to_email).where(OutboxEmail.kind == "order_assigned")
    assert [r["to_email"] for r in ready] == [tree.email("north")]
    customer, _ = await actors(tree)
    current = await subscriptions.current_subscription(customer, tree.north["id"])
    assert current is not None
    assert (current["id"], current["seats"], current["batch_row"]["id"]) == (sub["id"], 30, batch["id"])
    assert current["account"]["has_card"] is True and "card_token" not in current["account"]


async def test_a_declined_card_leaves_the_subscription_pending_and_provisions_nothing(tree):
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"], DECLINING_CARD)
    result = await subscriptions.buy(customer, tree.north["id"], pro(), NOW, processor=PROCESSOR)
    assert result["charge"].ok is False and result["charge"].decline_reason == "Your card was declined."
    assert result["subscription"]["status"] == "pending" and result["batch"] is None
    assert result["invoice"]["status"] == "issued"
    assert await LicenceBatch.count() == 0 and await LicenceOrder.count() == 0
    assert await subscriptions.read_only_allowance(tree.north["id"]) == 0
    # A second purchase is refused while this one waits; a good card pays the same invoice.
    with pytest.raises(ValidationFailed):
        await subscriptions.buy(customer, tree.north["id"], pro(), NOW, processor=PROCESSOR)
    await accounts.save_card(customer, tree.north["id"], await card_token(GOOD_CARD), NOW, processor=PROCESSOR)
    paid = await settlement.pay_invoice(
        customer, result["invoice"]["id"], NOW + timedelta(hours=1), processor=PROCESSOR
    )
    assert paid["charge"].ok is True and paid["invoice"]["status"] == "paid"
    assert paid["batch"]["seats"] == 30 and paid["batch"]["starts_at"] == NOW + timedelta(hours=1)
    assert await Charge.count().where(Charge.invoice == result["invoice"]["id"]) == 2


async def test_pay_online_needs_a_card(tree):
    customer, _ = await actors(tree)
    with pytest.raises(ValidationFailed) as refused:
        await subscriptions.buy(customer, tree.north["id"], pro(), NOW, processor=PROCESSOR)
    assert "card" in refused.value.errors
    assert await Subscription.count() == 0 and await Invoice.count() == 0


async def test_buy_by_invoice_then_a_recorded_bank_transfer_gives_seats_from_the_payment_date(tree):
    customer, seller = await actors(tree)
    result = await subscriptions.buy(customer, tree.north["id"], pro(5, "invoice"), NOW, processor=PROCESSOR)
    sub, invoice = result["subscription"], result["invoice"]
    assert sub["status"] == "pending" and result["charge"] is None and result["batch"] is None
    order = await LicenceOrder.select().where(LicenceOrder.id == invoice["order"]).first()
    assert (order["status"], order["quantity"]) == ("requested", 15)
    requested = await OutboxEmail.select(OutboxEmail.to_email).where(OutboxEmail.kind == "order_requested")
    assert [r["to_email"] for r in requested] == [tree.email("sub")]
    assert await LicenceBatch.count() == 0

    # The customer cannot record a payment; the seller's manager can.
    with pytest.raises(PermissionDenied):
        await settlement.record_payment(customer, invoice["id"], method="bank_transfer", reference="x", now=NOW)
    # Nor can partner staff record a card payment by hand: only the processor pays by card.
    for method in ("card", ""):
        with pytest.raises(ValidationFailed, match="Choose how it was paid"):
            await settlement.record_payment(seller, invoice["id"], method=method, reference="x", now=NOW)
    assert (await Invoice.select(Invoice.status).where(Invoice.id == invoice["id"]).first())["status"] == "issued"
    paid_at = NOW + timedelta(days=9)
    recorded = await settlement.record_payment(
        seller, invoice["id"], method="bank_transfer", reference="TRF-991", now=paid_at
    )
    batch = recorded["batch"]
    assert recorded["invoice"]["status"] == "paid" and recorded["invoice"]["payment_method"] == "bank_transfer"
    assert (batch["seats"], batch["starts_at"], batch["ends_at"], batch["order"]) == (
        15,
        paid_at,
        datetime(2027, 3, 19, 14, 30, tzinfo=UTC),
        order["id"],
    )
    assert (await LicenceOrder.select().where(LicenceOrder.id == order["id"]).first())["status"] == "assigned"
    sub = recorded["subscription"]
    assert (sub["status"], sub["term_start"], sub["batch"]) == ("active", paid_at, batch["id"])
    # Recorded twice (two staff at once): refused, still one batch.
    with pytest.raises(ValidationFailed):
        await settlement.record_payment(seller, invoice["id"], method="check", reference="", now=paid_at)
    assert await LicenceBatch.count() == 1


async def test_assign_unpaid_provisions_an_invoice_purchase_at_once_and_payment_adds_nothing(tree):
    customer, seller = await actors(tree)
    await profiles.save_profile(seller, tree.sub["id"], currency="USD", tax_rate_bp=0, assign_unpaid=True, now=NOW)
    result = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice"), NOW, processor=PROCESSOR)
    assert result["invoice"]["status"] == "issued"
    assert result["subscription"]["status"] == "active"
    assert (result["batch"]["seats"], result["batch"]["starts_at"]) == (10, NOW)
    recorded = await settlement.record_payment(
        seller, result["invoice"]["id"], method="check", reference="CHK 12", now=NOW + timedelta(days=20)
    )
    assert recorded["batch"] is None and recorded["invoice"]["status"] == "paid"
    assert await LicenceBatch.count() == 1 and recorded["subscription"]["term_start"] == NOW


async def test_two_purchases_at_once_make_one_live_subscription(tree):
    customer, _ = await actors(tree)
    await with_card(customer, tree.north["id"])
    outcomes = await asyncio.gather(
        *(subscriptions.buy(customer, tree.north["id"], pro(i, "invoice"), NOW, processor=PROCESSOR) for i in range(4)),
        return_exceptions=True,
    )
    made = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, ValidationFailed)]
    assert (len(made), len(refused)) == (1, 3), outcomes
    assert await Subscription.count() == 1 and await Invoice.count() == 1 and await LicenceOrder.count() == 1


async def test_upgrade_and_added_users_mid_term_are_charged_pro_rata_and_provisioned(tree):
    bought = await bought_online(tree, extra=20)
    customer, _ = await actors(tree)
    sub = bought["subscription"]
    at = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)  # 190 of the term's 365 days left
    quote = await quotes.quote_change(customer, sub["id"], tier="pro", extra_users=25, read_only_users=2, now=at)
    # 5 × 12 × $30 = $1,800 × 190 / 365 = $936.986… → $936.99
    assert [line.amount_cents for line in quote.lines] == [93_699]
    changed = await changes.change(
        customer, sub["id"], tier="pro", extra_users=25, read_only_users=2, now=at, processor=PROCESSOR
    )
    assert changed["charge"].ok is True and changed["invoice"]["total_cents"] == 93_699
    assert changed["invoice"]["kind"] == "change" and changed["invoice"]["status"] == "paid"
    added = changed["batch"]
    assert (added["seats"], added["starts_at"], added["ends_at"]) == (5, at, sub["term_end"])
    assert changed["subscription"]["extra_users"] == 25
    assert changed["subscription"]["batch"] == bought["batch"]["id"]  # the term's batch stays the renewal's source


async def test_lite_to_pro_upgrade_by_invoice_is_provisioned_when_paid(tree):
    customer, seller = await actors(tree)
    lite = Purchase(tier="lite", extra_users=0, read_only_users=0, addons=(), method="invoice")
    bought = await subscriptions.buy(customer, tree.north["id"], lite, NOW, processor=PROCESSOR)
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="1", now=NOW)
    at = NOW + timedelta(days=100)  # 265 of 365 days left
    changed = await changes.change(
        customer,
        bought["subscription"]["id"],
        tier="pro",
        extra_users=0,
        read_only_users=0,
        now=at,
        processor=PROCESSOR,
    )
    # ($6,000 − $3,000) × 265 / 365 = $2,178.082… → $2,178.08
    assert changed["invoice"]["total_cents"] == 217_808 and changed["batch"] is None
    assert changed["subscription"]["tier"] == "lite"
    # A second change waits for this one's payment.
    with pytest.raises(ValidationFailed):
        await changes.change(
            customer,
            bought["subscription"]["id"],
            tier="pro",
            extra_users=3,
            read_only_users=0,
            now=at,
            processor=PROCESSOR,
        )
    paid = await settlement.record_payment(
        seller, changed["invoice"]["id"], method="card_by_phone", reference="ph-1", now=at + timedelta(days=1)
    )
    assert paid["subscription"]["tier"] == "pro"
    # The included users rise with the tier: 5 more seats to the term's end.
    assert (paid["batch"]["seats"], paid["batch"]["ends_at"]) == (5, paid["subscription"]["term_end"])


async def test_fewer_users_cost_nothing_now_and_wait_for_the_next_term(tree):
    bought = await bought_online(tree, extra=20)
    customer, _ = await actors(tree)
    sub = bought["subscription"]
    changed = await changes.change(
        customer,
        sub["id"],
        tier="pro",
        extra_users=8,
        read_only_users=0,
        now=NOW + timedelta(days=30),
        processor=PROCESSOR,
    )
    assert changed["invoice"] is None and changed["charge"] is None and changed["batch"] is None
    assert changed["notes"][0].startswith("From 10 Mar 2027: 8 × Additional standard user")
    row = changed["subscription"]
    assert (row["extra_users"], row["next_extra_users"], row["read_only_users"], row["next_read_only_users"]) == (
        20,
        8,
        2,
        0,
    )
    # The renewal invoice asked for early is for the fewer users.
    renewal = await invoice_subscriptions.request_invoice(customer, sub["id"], NOW + timedelta(days=31))
    # $6,000 + 8 × $360
    assert (renewal["kind"], renewal["total_cents"], renewal["term_start"]) == ("renewal", 888_000, sub["term_end"])
    with pytest.raises(ValidationFailed):  # no moving down a tier during a term
        await changes.change(
            customer, sub["id"], tier="lite", extra_users=8, read_only_users=0, now=NOW, processor=PROCESSOR
        )


async def test_request_an_invoice_is_one_per_term_and_paid_early_leaves_no_gap_with_holders_carried_over(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    first = await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    learner = await add_user(tree.north, "learner@north.example", role="learner")
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(learner["id"],)), NOW + timedelta(days=1))
    sub = first["subscription"]
    early = sub["term_end"] - timedelta(days=40)
    one = await invoice_subscriptions.request_invoice(customer, sub["id"], early)
    two = await invoice_subscriptions.request_invoice(customer, sub["id"], early + timedelta(days=1))
    assert one["id"] == two["id"] and await Invoice.count().where(Invoice.kind == "renewal") == 1
    renewed = await settlement.record_payment(seller, one["id"], method="bank_transfer", reference="r", now=early)
    batch = renewed["batch"]
    assert (batch["starts_at"], batch["ends_at"]) == (sub["term_end"], datetime(2028, 3, 10, 14, 30, tzinfo=UTC))
    assert batch["allocated"] == 1
    seat = await Allocation.select().where(Allocation.batch == batch["id"]).first()
    assert (seat["user"], seat["starts_at"], seat["ends_at"]) == (learner["id"], sub["term_end"], batch["ends_at"])
    held = await User.select(User.licence_ends_at).where(User.id == learner["id"]).first()
    assert held["licence_ends_at"] == batch["ends_at"]
    now_sub = renewed["subscription"]
    assert (now_sub["term_start"], now_sub["term_end"], now_sub["batch"]) == (
        sub["term_end"],
        batch["ends_at"],
        batch["id"],
    )
    assert await tally_drift() == []


async def test_cancel_online_runs_to_the_end_and_can_be_undone_before_it(tree):
    bought = await bought_online(tree)
    customer, _ = await actors(tree)
    sub = bought["subscription"]
    cancelled = await cancellation.cancel(customer, sub["id"], NOW + timedelta(days=3))
    assert cancelled["auto_renew"] is False and cancelled["ends_at"] == sub["term_end"]
    assert cancelled["status"] == "active"
    with pytest.raises(ValidationFailed):  # cancelled, nothing renews: no renewal invoice either
        await invoice_subscriptions.request_invoice(customer, sub["id"], NOW + timedelta(days=4))
    undone = await cancellation.undo_cancel(customer, sub["id"], NOW + timedelta(days=5))
    assert undone["auto_renew"] is True and undone["cancelled_at"] is None
    await cancellation.cancel(customer, sub["id"], NOW + timedelta(days=6))
    with pytest.raises(ValidationFailed):  # at the end: too late to undo
        await cancellation.undo_cancel(customer, sub["id"], sub["term_end"])
    row = await Subscription.select().where(Subscription.id == sub["id"]).first()
    assert row["auto_renew"] is False and row["cancelled_at"] == NOW + timedelta(days=6)


async def test_invoice_subscriptions_request_cancellation_and_partner_staff_confirm_it(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice"), NOW, processor=PROCESSOR)
    sub = bought["subscription"]
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    with pytest.raises(ValidationFailed):  # Cancel is for Pay Online
        await cancellation.cancel(customer, sub["id"], NOW)
    requested = await cancellation.request_cancellation(customer, sub["id"], NOW + timedelta(days=1))
    assert requested["cancel_requested_at"] == NOW + timedelta(days=1)
    mail = await OutboxEmail.select(OutboxEmail.to_email).where(OutboxEmail.kind == "subscription_cancellation")
    assert [m["to_email"] for m in mail] == [tree.email("sub")]
    listed = await subscription_list.list_subscriptions(seller, {"cancellation_requested": "yes"}, 1)
    assert [row["id"] for row in listed.items] == [sub["id"]]
    with pytest.raises(PermissionDenied):
        await cancellation.confirm_cancellation(customer, sub["id"], NOW + timedelta(days=2))
    confirmed = await cancellation.confirm_cancellation(seller, sub["id"], NOW + timedelta(days=2))
    assert confirmed["auto_renew"] is False and confirmed["status"] == "active"
    assert (await subscription_list.list_subscriptions(seller, {"cancellation_requested": "yes"}, 1)).total == 0
    told = await OutboxEmail.select(OutboxEmail.to_email).where(OutboxEmail.kind == "subscription_cancelled")
    assert [m["to_email"] for m in told] == [tree.email("north")]


async def test_a_read_only_manager_is_refused_every_change(tree):
    bought = await bought_online(tree)
    sub, invoice = bought["subscription"], bought["invoice"]
    viewer = await add_user(tree.north, "viewer@north.example", role="read_only")
    reader = await load_actor(viewer["id"], None)
    assert reader is not None and reader.read_only
    partner_reader = replace((await actors(tree))[1], read_only=True)
    attempts = [
        subscriptions.buy(reader, tree.north["id"], pro(), NOW, processor=PROCESSOR),
        changes.change(reader, sub["id"], tier="pro", extra_users=30, read_only_users=2, now=NOW, processor=PROCESSOR),
        cancellation.cancel(reader, sub["id"], NOW),
        cancellation.undo_cancel(reader, sub["id"], NOW),
        cancellation.request_cancellation(reader, sub["id"], NOW),
        invoice_subscriptions.request_invoice(reader, sub["id"], NOW),
        settlement.pay_invoice(reader, invoice["id"], NOW, processor=PROCESSOR),
        cancellation.confirm_cancellation(partner_reader, sub["id"], NOW),
        settlement.record_payment(partner_reader, invoice["id"], method="check", reference="", now=NOW),
        accounts.save_card(reader, tree.north["id"], await card_token(GOOD_CARD), NOW, processor=PROCESSOR),
        accounts.save_billing_address(reader, tree.north["id"], now=NOW, **ADDRESS),
        accounts.create_online_billing_account(
            reader,
            tree.north["id"],
            payment_method=await card_token(GOOD_CARD),
            now=NOW,
            **ADDRESS,
            processor=PROCESSOR,
        ),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            await attempt
    # It still reads.
    assert (await subscriptions.current_subscription(reader, tree.north["id"]))["id"] == sub["id"]
    assert await Invoice.count() == 1 and await Subscription.count() == 1


async def test_another_tenants_ids_answer_not_found(tree):
    bought = await bought_online(tree)
    sub, invoice = bought["subscription"], bought["invoice"]
    stranger = await load_actor(tree.managers["other"]["id"], None)
    neighbour = await load_actor(tree.managers["direct"]["id"], None)
    assert stranger is not None and neighbour is not None
    for who in (stranger, neighbour):
        for attempt in (
            subscriptions.current_subscription(who, tree.north["id"]),
            subscriptions.buy(who, tree.north["id"], pro(), NOW, processor=PROCESSOR),
            changes.change(who, sub["id"], tier="pro", extra_users=30, read_only_users=2, now=NOW, processor=PROCESSOR),
            cancellation.cancel(who, sub["id"], NOW),
            cancellation.undo_cancel(who, sub["id"], NOW),
            cancellation.request_cancellation(who, sub["id"], NOW),
            cancellation.confirm_cancellation(who, sub["id"], NOW),
            invoice_subscriptions.request_invoice(who, sub["id"], NOW),
            settlement.pay_invoice(who, invoice["id"], NOW, processor=PROCESSOR),
            settlement.record_payment(who, invoice["id"], method="check", reference="", now=NOW),
            quotes.quote_change(who, sub["id"], tier="pro", extra_users=1, read_only_users=0, now=NOW),
            accounts.billing_account(who, tree.north["id"]),
        ):
            with pytest.raises(NotFound):
                await attempt
    assert (await subscription_list.list_subscriptions(stranger, {}, 1)).total == 0
    # The top partner sees the sub-partner's customer; a customer manager sees no partner list.
    top = await load_actor(tree.managers["partner"]["id"], None)
    assert top is not None
    assert [row["id"] for row in (await subscription_list.list_subscriptions(top, {}, 1)).items] == [sub["id"]]
    with pytest.raises(PermissionDenied):
        await subscription_list.list_subscriptions((await actors(tree))[0], {}, 1)


async def test_partner_list_filters(tree):
    online = await bought_online(tree)
    customer, seller = await actors(tree)
    top = await load_actor(tree.managers["partner"]["id"], None)
    direct = await load_actor(tree.managers["direct"]["id"], None)
    assert top is not None and direct is not None
    await with_card(direct, tree.direct["id"], DECLINING_CARD)
    declined = await subscriptions.buy(direct, tree.direct["id"], pro(0), NOW, processor=PROCESSOR)
    ids = lambda page: [row["id"] for row in page.items]  # noqa: E731
    assert ids(await subscription_list.list_subscriptions(top, {"failed_charges": "yes"}, 1)) == [
        declined["subscription"]["id"]
    ]
    assert ids(await subscription_list.list_subscriptions(top, {"status": "active"}, 1)) == [
        online["subscription"]["id"]
    ]
    assert ids(await subscription_list.list_subscriptions(top, {"method": "invoice"}, 1)) == []
    assert ids(await subscription_list.list_subscriptions(top, {"customer": tree.direct["id"]}, 1)) == [
        declined["subscription"]["id"]
    ]
    before = (online["subscription"]["term_end"] - timedelta(days=1)).date()
    assert ids(await subscription_list.list_subscriptions(top, {"renews_before": before}, 1)) == []
    assert ids(await subscription_list.list_subscriptions(top, {"renews_before": before + timedelta(days=1)}, 1)) == [
        online["subscription"]["id"]
    ]
    # Pending ones (no term yet) come last.
    assert ids(await subscription_list.list_subscriptions(top, {}, 1)) == [
        online["subscription"]["id"],
        declined["subscription"]["id"],
    ]
    # The sub-partner sees only its own customer's.
    assert ids(await subscription_list.list_subscriptions(seller, {}, 1)) == [online["subscription"]["id"]]


async def test_filter_choices_offer_the_customers_with_subscriptions_under_the_wing(tree):
    await bought_online(tree)
    _, seller = await actors(tree)
    top = await load_actor(tree.managers["partner"]["id"], None)
    assert top is not None
    # Direct Customer has no subscription: not offered, though it is under the wing.
    everything = {f.name for f in subscription_list.SUBSCRIPTION_FILTERS}
    choices = await subscription_list.filter_choices(top, everything)
    assert choices["customer"] == [{"id": tree.north["id"], "name": "North Customer"}]
    assert [c["name"] for c in choices["method"]] == ["Pay Online", "Pay by Invoice"]
    assert [c["id"] for c in choices["status"]] == ["pending", "active", "lapsed", "ended"]
    assert choices["failed_charges"] == choices["cancellation_requested"] == [{"id": "yes", "name": "Yes"}]
    assert set(choices) == everything - {"renews_before"}
    other = await load_actor(tree.managers["other"]["id"], None)
    assert other is not None
    assert (await subscription_list.filter_choices(other, {"customer"}))["customer"] == []
    assert await subscription_list.filter_choices(seller, {"status"}) == {"status": choices["status"]}


async def test_read_only_credits_cap_nothing_without_an_active_subscription(tree):
    assert await subscriptions.read_only_allowance(tree.north["id"]) == 0
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 4), NOW, processor=PROCESSOR)
    assert await subscriptions.read_only_allowance(tree.north["id"]) == 0  # pending: nothing paid
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    assert await subscriptions.read_only_allowance(tree.north["id"]) == 4


async def test_invoices_of_the_subscription_carry_numbers_and_the_audit_has_the_money(tree):
    bought = await bought_online(tree)
    invoice = await invoices.get_invoice((await actors(tree))[0], bought["invoice"]["id"])
    assert invoice["label"] == "INV-00001" and invoice["seller"]["id"] == tree.sub["id"]
    assert sum(line["amount_cents"] for line in invoice["lines"]) == invoice["subtotal_cents"] == 1_332_000
    buy = await AuditEntry.select().where(AuditEntry.action == "subscription.buy").output(load_json=True).first()
    assert (buy["detail"]["total_cents"], buy["detail"]["currency"]) == (1_332_000, "USD")
    assert PROCESSOR.test_mode is True


async def test_an_invoice_order_waits_for_its_payment_unless_the_seller_assigns_unpaid_orders(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(2, "invoice"), NOW, processor=PROCESSOR)
    assigned_at = NOW + timedelta(days=2)
    for asking in (decisions.assign_preview, decisions.assign_order):
        with pytest.raises(ValidationFailed, match="Its invoice is not paid yet"):
            await asking(seller, bought["invoice"]["order"], assigned_at)
    assert await LicenceBatch.count() == 0

    # The seller changes its setting: Assign goes first, and the payment later keeps that batch.
    await profiles.save_profile(seller, tree.sub["id"], currency="USD", tax_rate_bp=0, assign_unpaid=True, now=NOW)
    batch = await decisions.assign_order(seller, bought["invoice"]["order"], assigned_at)
    paid_at = NOW + timedelta(days=5)
    recorded = await settlement.record_payment(
        seller, bought["invoice"]["id"], method="money_order", reference="MO-5", now=paid_at
    )
    assert recorded["batch"]["id"] == batch["id"] and await LicenceBatch.count() == 1
    sub = recorded["subscription"]
    assert (sub["status"], sub["batch"], sub["term_start"], sub["term_end"]) == (
        "active",
        batch["id"],
        assigned_at,
        batch["ends_at"],
    )


async def test_an_invoice_order_declined_meanwhile_still_gets_seats_when_paid(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice"), NOW, processor=PROCESSOR)
    await decisions.decline_order(seller, bought["invoice"]["order"], "Waiting for the payment.", NOW)
    recorded = await settlement.record_payment(
        seller, bought["invoice"]["id"], method="check", reference="", now=NOW + timedelta(days=1)
    )
    assert recorded["batch"]["seats"] == 10 and recorded["batch"]["order"] != bought["invoice"]["order"]
    assert recorded["subscription"]["status"] == "active"
