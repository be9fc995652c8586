"""A seller's currency is its subscribers': it cannot
change while any subscription of theirs is live or an invoice is unpaid, or renewals
would be billed in another currency than the one bought in."""

from __future__ import annotations

import pytest

from portal.domain.billing import cancellation, profiles, settlement, subscriptions
from portal.domain.errors import ValidationFailed
from portal.tables.billing import BillingProfile
from tests.support import PROCESSOR, post_form, sign_in
from tests.test_billing_subscriptions import NOW, actors, pro

REFUSED = (
    "The currency stays USD while 1 subscription is live and 0 invoices are unpaid in it: their renewals "
    "and payments are in USD. Change it once they have ended and been paid."
)


async def test_the_currency_cannot_change_while_a_subscription_is_live(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    with pytest.raises(ValidationFailed) as refused:
        await profiles.save_profile(seller, tree.sub["id"], currency="EUR", tax_rate_bp=0, assign_unpaid=False, now=NOW)
    assert refused.value.errors == {
        "currency": REFUSED.replace(
            "1 subscription is live and 0 invoices are", "1 subscription is live and 1 invoice is"
        )
    }
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    with pytest.raises(ValidationFailed) as refused:
        await profiles.save_profile(seller, tree.sub["id"], currency="eur", tax_rate_bp=0, assign_unpaid=False, now=NOW)
    assert refused.value.errors == {"currency": REFUSED}
    # The tax rate and the rest may change; the currency as it is too.
    saved = await profiles.save_profile(
        seller, tree.sub["id"], currency="USD", tax_rate_bp=825, assign_unpaid=True, now=NOW
    )
    assert (saved["currency"], saved["tax_rate_bp"]) == ("USD", 825)
    assert (await BillingProfile.select(BillingProfile.currency).first())["currency"] == "USD"


async def test_the_currency_changes_once_nothing_is_live_or_unpaid(tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    await cancellation.request_cancellation(customer, bought["subscription"]["id"], NOW)
    await cancellation.confirm_cancellation(seller, bought["subscription"]["id"], NOW)  # pending: ends, invoice void
    saved = await profiles.save_profile(
        seller, tree.sub["id"], currency="EUR", tax_rate_bp=0, assign_unpaid=False, now=NOW
    )
    assert saved["currency"] == "EUR"


async def test_the_settings_page_says_why_the_currency_stays(client, tree):
    customer, seller = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    await settlement.record_payment(seller, bought["invoice"]["id"], method="check", reference="", now=NOW)
    await sign_in(client, tree.email("sub"))
    refused = await post_form(client, "/billing/settings", "/billing/settings", {"currency": "GBP", "tax_rate": "0"})
    assert refused.status_code == 400 and REFUSED in refused.text
    assert (await BillingProfile.select(BillingProfile.currency).first())["currency"] == "USD"
