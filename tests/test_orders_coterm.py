"""Co-terming: Request Licenses offers "End with the current term" (the running
batch, not a trial, that ends last) or "12 months from now"; the order keeps the
choice, Assign honours it, and every confirmation says which applies, its end,
and, where the seller bills in the portal, the pro-rata price against a full year.
Domain and pages, each engine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import money, profiles
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.licences import coterm
from portal.domain.orders import decisions, order_list, requests
from portal.tables import AuditEntry, LicenceBatch, LicenceOrder, OutboxEmail
from tests.support import csrf_of, sign_in
from tests.test_dashboard import NOW, actors, batch_ending
from tests.test_dashboard_figures import assert_exact

CURRENT, YEAR_ON = coterm.END_WITH_TERM, coterm.TWELVE_MONTHS


async def test_end_with_the_current_term_ends_the_new_batch_with_the_batch_ending_last(tree):
    partner, customer = await actors(tree)
    await batch_ending(partner, tree.direct, 5, NOW + timedelta(days=40))
    last = await batch_ending(partner, tree.direct, 2, NOW + timedelta(days=100))
    await batch_ending(partner, tree.direct, 9, NOW - timedelta(days=3))  # ended: not the current term
    order = await requests.request_order(customer, tree.direct["id"], 3, None, "", NOW, ends_with=CURRENT)
    assert order["coterm_ends_at"] == last["ends_at"]

    assigned_at = NOW + timedelta(days=1)
    batch = await decisions.assign_order(partner, order["id"], assigned_at)
    assert (batch["starts_at"], batch["ends_at"]) == (assigned_at, last["ends_at"])
    assert batch["term"].cotermed and batch["term"].days == 99
    assert batch["term"].said_done == f"ending with the current term, on {last['ends_at']:%d %b %Y}"
    mails = await OutboxEmail.select(OutboxEmail.body).where(OutboxEmail.kind == "order_assigned")
    assert sum(f"They run until {last['ends_at']:%d %B %Y}, with your current term" in m["body"] for m in mails) == 1
    entry = (
        await AuditEntry.select()
        .where(AuditEntry.action == "order.assign")
        .order_by(AuditEntry.id, ascending=False)
        .first()
    )
    assert entry is not None and f'"ends_with_term": "{last["ends_at"].isoformat()}"' in str(entry["detail"])
    await assert_exact(partner, tree, assigned_at)


async def test_twelve_months_from_now_stays_the_default(tree):
    partner, customer = await actors(tree)
    await batch_ending(partner, tree.direct, 5, NOW + timedelta(days=40))
    order = await requests.request_order(customer, tree.direct["id"], 3, None, "", NOW)
    assert order["coterm_ends_at"] is None
    batch = await decisions.assign_order(partner, order["id"], NOW)
    assert batch["ends_at"] == money.term_end(NOW) and not batch["term"].cotermed


async def test_end_with_the_current_term_is_refused_without_a_running_paid_batch(tree):
    partner, customer = await actors(tree)
    await batch_ending(partner, tree.direct, 9, NOW - timedelta(days=3))
    await decisions.start_trial(partner, tree.north["id"], 5, NOW)
    for company in (tree.direct, tree.north):  # an ended batch, a trial: no current term
        assert await coterm.offer(company["id"], 3, NOW) is None
        with pytest.raises(ValidationFailed) as refused:
            await requests.request_order(
                customer if company is tree.direct else partner, company["id"], 3, None, "", NOW, ends_with=CURRENT
            )
        assert "holds no running licenses to end with" in refused.value.errors["ends_with"]
    with pytest.raises(ValidationFailed) as unknown:
        await requests.request_order(customer, tree.direct["id"], 3, None, "", NOW, ends_with="someday")
    assert "ends_with" in unknown.value.errors
    assert await LicenceOrder.count().where(LicenceOrder.status == "requested") == 0


async def test_a_co_termed_order_is_refused_at_assign_once_its_term_has_ended(tree):
    partner, customer = await actors(tree)
    running = await batch_ending(partner, tree.direct, 5, NOW + timedelta(days=10))
    order = await requests.request_order(customer, tree.direct["id"], 3, None, "", NOW, ends_with=CURRENT)
    later = running["ends_at"] + timedelta(hours=1)
    with pytest.raises(ValidationFailed) as refused:
        await decisions.assign_preview(partner, order["id"], later)
    assert f"which ended on {running['ends_at']:%d %b %Y}" in refused.value.errors["status"]
    with pytest.raises(ValidationFailed):
        await decisions.assign_order(partner, order["id"], later)
    assert await LicenceBatch.count() == 1
    assert (await LicenceOrder.select().where(LicenceOrder.id == order["id"]).first())["status"] == "requested"


async def test_the_offer_is_priced_pro_rata_only_where_the_seller_bills_in_the_portal(tree):
    partner, _ = await actors(tree)
    running = await batch_ending(partner, tree.direct, 5, NOW + timedelta(days=100))
    plain = await coterm.offer(tree.direct["id"], 3, NOW)
    assert plain is not None and plain.price is None and plain.term_cents is None
    assert plain.said(CURRENT) == f"End with the current term: ends {running['ends_at']:%d %b %Y}, 100 days"
    assert plain.said(YEAR_ON) == f"12 months from now: ends {money.term_end(NOW):%d %b %Y}, 365 days"

    await profiles.profile(tree.partner["id"])
    await billing_catalogue.items(tree.partner["id"])  # "Additional standard user", $30 a month
    priced = await coterm.offer(tree.direct["id"], 3, NOW)
    assert priced is not None and priced.price == coterm.SeatPrice(360_00, "USD")
    # 3 × $360 × 100 / 365 days of the term ending then = $295.890…
    assert (priced.term_cents, priced.year_cents) == (295_89, 1_080_00)
    assert priced.said(CURRENT).endswith("100 days, $295.89 USD for 3 seats (pro rata)")
    assert priced.said(YEAR_ON).endswith("365 days, $1,080.00 USD for 3 seats")


async def test_request_licenses_requested_orders_and_assign_say_which_end_applies(client, tree):
    partner, customer = await actors(tree)
    now = utcnow()
    running = await batch_ending(partner, tree.direct, 2, now + timedelta(days=50))
    ends = f"{running['ends_at']:%d %b %Y}"
    await profiles.profile(tree.partner["id"])
    await billing_catalogue.items(tree.partner["id"])

    await sign_in(client, tree.email("direct"))
    form = await client.get(f"/companies/{tree.direct['id']}/licences/orders/new")
    assert "When the licenses end" in form.text
    assert f"End with the current term: ends {ends}" in form.text and "12 months from now: ends" in form.text
    # Priced per license: the quantity may still change; Assign's confirmation prices the order.
    assert "USD for 1 seat (pro rata)" in form.text and "$360.00 USD for 1 seat" in form.text
    assert "Priced per license" in form.text
    sent = await client.post(
        f"/companies/{tree.direct['id']}/licences/orders",
        data={
            "_csrf_token": csrf_of(form.text),
            "quantity": "4",
            "product_id": "",
            "po_number": "",
            "ends_with": CURRENT,
            "confirm": "1",
        },
    )
    assert sent.status_code in (302, 303)
    order = await LicenceOrder.select().where(LicenceOrder.status == "requested").first()
    assert order["coterm_ends_at"] == running["ends_at"]

    await client.post("/logout", data={"_csrf_token": csrf_of(form.text)})
    await sign_in(client, tree.email("partner"))
    page = await client.get("/licences/orders")
    assert f"ends with the current term, {ends}" in page.text
    token = {"_csrf_token": csrf_of(page.text)}
    said = f"ends with the current term, on {ends}"
    in_row = await client.post(
        f"/licences/orders/{order['id']}/assign",
        data=token,
        headers={"HX-Request": "true", "HX-Target": f"order-{order['id']}"},
    )
    row = " ".join(in_row.text.split())
    assert said in row and "(pro rata)" in row and "12 months from now: ends" in row
    no_script = " ".join((await client.post(f"/licences/orders/{order['id']}/assign", data=token)).text.split())
    assert said in no_script and "<html" in no_script and "(pro rata)" in no_script

    done = await client.post(f"/licences/orders/{order['id']}/assign", data={**token, "confirm": "1"})
    assert done.status_code in (302, 303)
    flashed = await client.get(done.headers["location"])
    assert f"ending with the current term, on {ends}" in flashed.text
    batch = await LicenceBatch.select().where(LicenceBatch.order == order["id"]).first()
    assert batch["ends_at"] == running["ends_at"]
    assert (await order_list.get_order(partner, order["id"]))["coterm_ends_at"] == running["ends_at"]
