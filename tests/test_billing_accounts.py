"""Billing accounts: the billing address, the card kept as a token (never its
number), and "Create an Online Billing Account" switching an invoice
subscription to Pay Online."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain.billing import accounts, cancellation, payments, settlement, subscriptions
from portal.domain.billing.payments import CardDetails
from portal.domain.errors import NotFound, ValidationFailed
from portal.tables import AuditEntry
from portal.tables.billing import BillingAccount, Subscription
from tests.support import PROCESSOR, card_token
from tests.test_billing_subscriptions import ADDRESS, DECLINING_CARD, GOOD_CARD, NOW, actors, pro


async def test_the_address_is_saved_tidied_and_bad_fields_are_named(tree):
    customer, _ = await actors(tree)
    assert await accounts.billing_account(customer, tree.north["id"]) is None
    saved = await accounts.save_billing_address(
        customer,
        tree.north["id"],
        billing_name="  North   Customer Ltd ",
        billing_email=" AP@North.Example ",
        address=" 1 Main St \n\n Springfield ",
        country="us",
        now=NOW,
    )
    assert (saved["billing_name"], saved["billing_email"], saved["address"], saved["country"]) == (
        "North Customer Ltd",
        "AP@north.example",
        "1 Main St\nSpringfield",
        "US",
    )
    assert saved["has_card"] is False and "card_token" not in saved
    with pytest.raises(ValidationFailed) as refused:
        await accounts.save_billing_address(
            customer, tree.north["id"], billing_name=" ", billing_email="nope", address="", country="USA", now=NOW
        )
    assert set(refused.value.errors) == {"billing_name", "billing_email", "address", "country"}
    row = await BillingAccount.select().where(BillingAccount.company == tree.north["id"]).first()
    assert row["billing_name"] == "North Customer Ltd"  # the refused save wrote nothing


async def test_a_card_is_kept_as_a_token_brand_last_four_and_expiry(tree):
    customer, _ = await actors(tree)
    await accounts.save_billing_address(customer, tree.north["id"], now=NOW, **ADDRESS)
    shown = await accounts.save_card(customer, tree.north["id"], await card_token(GOOD_CARD), NOW, processor=PROCESSOR)
    assert (shown["card_brand"], shown["card_last4"], shown["card_expires"], shown["has_card"]) == (
        "Visa",
        "4242",
        "2030-04",
        True,
    )
    row = await BillingAccount.select().where(BillingAccount.company == tree.north["id"]).first()
    assert row["card_token"].startswith("tok_test_") and row["billing_name"] == ADDRESS["billing_name"]
    stored = " ".join(str(v) for v in row.values()) + " ".join(
        str(e["detail"]) for e in await AuditEntry.select(AuditEntry.detail)
    )
    assert "4242424242424242" not in stored and "4242 4242 4242 4242" not in stored
    with pytest.raises(ValidationFailed) as refused:
        await accounts.save_card(
            customer,
            tree.north["id"],
            await card_token(CardDetails("4000 0000 0000 0002", 4, 2030, "123")),
            NOW,
            processor=PROCESSOR,
        )
    assert refused.value.errors == {"card": "Your card was declined."}
    with pytest.raises(ValidationFailed) as refused:
        await accounts.save_card(
            customer,
            tree.north["id"],
            await card_token(CardDetails("4242 4242 4242 4241", 4, 2030, "123")),
            NOW,
            processor=PROCESSOR,
        )
    assert refused.value.errors == {"card": "That card number is not valid."}
    # A card number posted where the processor's payment-method id belongs is no card at all.
    for sent in ("4242424242424242", "", "tok_live_4242"):
        with pytest.raises(ValidationFailed) as refused:
            await accounts.save_card(customer, tree.north["id"], sent, NOW, processor=PROCESSOR)
        assert refused.value.errors == {"card": payments.NO_PAYMENT_METHOD}, sent
    kept = (
        await BillingAccount.select(BillingAccount.card_token).where(BillingAccount.company == tree.north["id"]).first()
    )
    assert kept["card_token"] == row["card_token"]


async def test_create_an_online_billing_account_switches_an_invoice_subscription_to_pay_online(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice"), NOW, processor=PROCESSOR)
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    await cancellation.request_cancellation(customer, bought["subscription"]["id"], NOW)
    account = await accounts.create_online_billing_account(
        customer,
        tree.north["id"],
        payment_method=await card_token(GOOD_CARD),
        now=NOW + timedelta(days=1),
        **ADDRESS,
        processor=PROCESSOR,
    )
    assert account["has_card"] is True and account["switched_subscriptions"] == [bought["subscription"]["id"]]
    sub = await Subscription.select().where(Subscription.id == bought["subscription"]["id"]).first()
    assert (sub["method"], sub["auto_renew"], sub["cancel_requested_at"]) == ("online", True, None)
    # Now it is cancelled with Cancel, like any online subscription.
    cancelled = await cancellation.cancel(customer, sub["id"], NOW + timedelta(days=2))
    assert cancelled["ends_at"] == sub["term_end"]


async def test_create_an_online_billing_account_writes_nothing_unless_all_is_right(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice"), NOW, processor=PROCESSOR)
    bad_address = {**ADDRESS, "country": ""}
    with pytest.raises(ValidationFailed) as refused:
        await accounts.create_online_billing_account(
            customer,
            tree.north["id"],
            payment_method=await card_token(GOOD_CARD),
            now=NOW,
            **bad_address,
            processor=PROCESSOR,
        )
    assert set(refused.value.errors) == {"country"}
    with pytest.raises(ValidationFailed) as refused:
        await accounts.create_online_billing_account(
            customer,
            tree.north["id"],
            payment_method=await card_token(CardDetails("4000 0000 0000 0002", 4, 2030, "123")),
            now=NOW,
            **ADDRESS,
            processor=PROCESSOR,
        )
    assert refused.value.errors == {"card": "Your card was declined."}
    assert await BillingAccount.count() == 0
    sub = await Subscription.select().where(Subscription.id == bought["subscription"]["id"]).first()
    assert sub["method"] == "invoice"
    # A subscription partner staff cancelled stays cancelled and on invoice.
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    await cancellation.confirm_cancellation(seller, sub["id"], NOW)
    account = await accounts.create_online_billing_account(
        customer,
        tree.north["id"],
        payment_method=await card_token(DECLINING_CARD),
        now=NOW,
        **ADDRESS,
        processor=PROCESSOR,
    )
    assert account["switched_subscriptions"] == []
    sub = await Subscription.select().where(Subscription.id == sub["id"]).first()
    assert (sub["method"], sub["auto_renew"]) == ("invoice", False)


async def test_accounts_are_for_customers_in_the_wing(tree):
    customer, seller = await actors(tree)
    with pytest.raises(NotFound):
        await accounts.save_billing_address(seller, tree.sub["id"], now=NOW, **ADDRESS)
    with pytest.raises(NotFound):
        await accounts.save_card(
            customer, tree.other_customer["id"], await card_token(GOOD_CARD), NOW, processor=PROCESSOR
        )
    # The seller's manager may keep a customer's address (manage mode or not).
    saved = await accounts.save_billing_address(seller, tree.north["id"], now=NOW, **ADDRESS)
    assert saved["company"] == tree.north["id"]
