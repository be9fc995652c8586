"""Billing pages, second pass: the add-ons bought on the customer's
dashboard, partner staff undoing a cancellation they confirmed and voiding an
invoice without reissuing it, and read-only managers seeing billing without the
forms that change it."""

from __future__ import annotations

import re

from portal.domain.billing.quotes import format_day
from portal.domain.clock import utcnow
from portal.tables import LicenceOrder, User
from portal.tables.billing import Invoice, Subscription
from tests.factories import T0, _hash
from tests.support import post_form, sign_in
from tests.test_billing_web import ADDRESS, CARD, buy, flashes

LITE_BY_INVOICE = {"tier": "lite", "extra_users": "0", "read_only_users": "0", "method": "invoice"}
READ_ONLY_NOTE = "Read-only access: ask a manager of North Customer to make changes."
_POST_FORM = re.compile(r'<form method="post" action="([^"]+)"')


def post_forms(html: str) -> list[str]:
    """Where the page's POST forms go, but the layout's Sign out."""
    return [action for action in _POST_FORM.findall(html) if action != "/logout"]


async def paid_lite_by_invoice(client, tree) -> tuple[dict, dict]:
    """Direct Customer buys Lite by invoice; partner staff record a check. Signed in as partner staff after."""
    await sign_in(client, tree.email("direct"))
    await buy(client, tree.direct["id"], LITE_BY_INVOICE)
    invoice = await Invoice.select().first()
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    await post_form(
        client,
        f"/invoices/{invoice['id']}",
        f"/invoices/{invoice['id']}/payment",
        {"method": "check", "reference": "7"},
    )
    subscription = await Subscription.select().first()
    return subscription, invoice


async def test_the_dashboard_lists_the_add_ons_bought_with_their_dates(client, tree):
    await sign_in(client, tree.email("north"))
    base = f"/companies/{tree.north['id']}/billing"
    before = await client.get(base)
    assert "None bought." in before.text
    purchase = {"tier": "lite", "extra_users": "0", "read_only_users": "0", "method": "online"}
    purchase["addons"] = ("onboarding", "report_summary")  # type: ignore[assignment]
    bought = await buy(client, tree.north["id"], purchase, {**CARD, **ADDRESS})
    assert bought.status_code == 302, bought.text[:2000]
    invoice = await Invoice.select().first()
    page = await client.get(base)
    addons = page.text.split('data-testid="addons"')[1].split("</section>")[0]
    day = format_day(invoice["paid_at"])
    link = f'invoice <a href="/invoices/{invoice["id"]}">INV-00001</a>'
    assert f'Onboarding online course <span class="muted">bought {day}, {link}</span>' in addons
    assert f'Phishing simulation report <span class="muted">bought {day}, {link}</span>' in addons
    assert "Lite" not in addons  # the tier is the plan, not an add-on


async def test_partner_staff_undo_a_cancellation_they_confirmed_before_the_end(client, tree):
    subscription, _ = await paid_lite_by_invoice(client, tree)
    end = format_day(subscription["term_end"])
    action = f"/billing/subscriptions/{subscription['id']}/undo-cancel"
    listed = await client.get("/billing")
    assert action not in listed.text  # nothing to undo yet
    await post_form(client, "/billing", f"/billing/subscriptions/{subscription['id']}/confirm-cancellation", {})

    listed = await client.get("/billing")
    assert f'action="{action}"' in listed.text
    assert f"A renewal invoice follows 30 days before {end}." in listed.text  # said before
    undone = await post_form(client, "/billing", action, {})
    assert (undone.status_code, undone.headers["location"]) == (302, "/billing")
    page = await client.get("/billing")
    assert flashes(page.text) == [f"Cancellation undone: a renewal invoice follows 30 days before {end}."]
    assert f'action="{action}"' not in page.text
    row = await Subscription.select().first()
    assert (row["auto_renew"], row["cancelled_at"], row["status"]) == (True, None, "active")


async def test_partner_staff_void_a_purchase_invoice_with_a_reason_and_the_purchase_ends(client, tree):
    await sign_in(client, tree.email("direct"))
    await buy(client, tree.direct["id"], LITE_BY_INVOICE)
    invoice = await Invoice.select().first()
    subscription = await Subscription.select().first()
    page = await client.get(f"/invoices/{invoice['id']}")
    assert f'action="/invoices/{invoice["id"]}/void"' not in page.text  # partner staff's
    refused = await post_form(client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/void", {"reason": "x"})
    assert refused.status_code == 403
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    page = await client.get(f"/invoices/{invoice['id']}")
    ends = (
        "its order in Requested Orders is declined and the subscription, never paid, ends: "
        "Direct Customer can buy again."
    )
    assert f"Nothing is issued in its place; {ends}" in page.text

    blank = await post_form(client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/void", {"reason": "  "})
    assert blank.status_code == 400 and "Say why the invoice is void." in blank.text
    assert (await Invoice.select(Invoice.status).first())["status"] == "issued"

    voided = await post_form(
        client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/void", {"reason": "Ordered by mistake"}
    )
    assert (voided.status_code, voided.headers["location"]) == (302, f"/invoices/{invoice['id']}")
    page = await client.get(voided.headers["location"])
    assert flashes(page.text) == [
        f"Invoice INV-00001 for $3,000.00 USD voided (reason: Ordered by mistake). Nothing replaces it; {ends}"
    ]
    rows = await Invoice.select(Invoice.status, Invoice.void_reason)
    assert rows == [{"status": "void", "void_reason": "Ordered by mistake"}]
    ended = await Subscription.select().first()
    assert (ended["status"], ended["auto_renew"]) == ("ended", False) and subscription["status"] == "pending"
    order = await LicenceOrder.select(LicenceOrder.status).where(LicenceOrder.id == invoice["order"]).first()
    assert order["status"] == "declined"

    again = await post_form(client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/void", {"reason": "x"})
    assert again.status_code == 302
    assert flashes((await client.get(again.headers["location"])).text) == [
        "This invoice is already void; it cannot be void."
    ]


async def test_a_read_only_manager_sees_billing_without_the_forms_that_change_it(client, tree):
    now = utcnow()
    await Subscription.insert(
        Subscription(
            company=tree.north["id"],
            company_path=tree.north["path"],
            partner=tree.north["parent"],
            tier="pro",
            read_only_users=1,
            method="online",
            status="active",
            auto_renew=True,
            term_start=now,
            term_end=now.replace(year=now.year + 1),
            created_at=T0,
        )
    )
    await User.insert(
        User(
            company=tree.north["id"],
            email="viewer@north.example",
            name="Vera Viewer",
            role="read_only",
            password_hash=_hash(),
            created_at=T0,
        )
    )
    await sign_in(client, "viewer@north.example")
    base = f"/companies/{tree.north['id']}/billing"
    for path in ("", "/subscriptions", "/change", "/add-users", "/buy", "/account"):
        page = await client.get(base + path)
        assert page.status_code == 200, path
        assert READ_ONLY_NOTE in page.text, path
        assert post_forms(page.text) == [], path
    dashboard = await client.get(base)
    assert "Pro" in dashboard.text and f'href="{base}/change"' not in dashboard.text
    assert f'href="{base}/add-users"' not in dashboard.text
    # A manager of the same company sees the forms.
    client.cookies.clear()
    await sign_in(client, tree.email("north"))
    page = await client.get(base + "/subscriptions")
    assert READ_ONLY_NOTE not in page.text and len(post_forms(page.text)) == 2  # Cancel, Request an invoice
