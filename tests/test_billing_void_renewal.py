"""A voided renewal invoice, by billing method, as the invoice page's Void box says
it (schedule.if_unpaid, voiding.if_voided, messages.void_effect) and as the jobs then
do it: online, each try is a decline (the card never asked) and the subscription
lapses after the last retry; by invoice, nothing is issued again and it lapses at
its end. Both engines."""

from __future__ import annotations

from datetime import timedelta

from portal.domain.access import load_actor
from portal.domain.billing import invoices
from portal.domain.billing.renewal import invoice_subscriptions, lapse, online, schedule, voiding
from portal.tables.billing import Invoice
from portal.web.billing.messages import void_effect
from tests.support import post_form, sign_in
from tests.test_billing_renewal import DUE, END, batches_of, mails, processor, reload, subscribe  # noqa: F401
from tests.test_billing_web import flashes

ASKED = END - timedelta(days=20)


async def _voided_renewal(tree, sub: dict) -> dict:
    customer = await load_actor(tree.managers["direct"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    assert customer is not None and partner is not None
    invoice = await invoice_subscriptions.request_invoice(customer, sub["id"], ASKED)
    return await invoices.void(partner, invoice["id"], "Sent to the wrong address", ASKED)


def test_what_an_unpaid_renewal_leads_to_by_method():
    sub = {"status": "active", "auto_renew": True, "term_end": END, "method": "online", "renewal_attempts": 0}
    retries = (END + timedelta(days=2), END + timedelta(days=4), END + timedelta(days=7))
    assert schedule.if_unpaid(sub) == schedule.Unpaid("online", END, retries, END + timedelta(days=7))
    # Tries already made are not said again.
    assert schedule.if_unpaid({**sub, "renewal_attempts": 2}).retries == retries[1:]
    assert schedule.if_unpaid({**sub, "method": "invoice"}) == schedule.Unpaid("invoice", END, (), END)
    assert schedule.if_unpaid({**sub, "auto_renew": False}) is None
    assert schedule.if_unpaid({**sub, "status": "lapsed"}) is None

    online_words = void_effect(schedule.if_unpaid(sub))
    assert online_words == (
        "the subscription pays online, and the renewal job takes a void renewal invoice as a declined card: "
        "nothing is charged, the managers are e-mailed each time it is tried (again on 12 Mar 2027, 14 Mar 2027 "
        "and 17 Mar 2027), and the subscription lapses on 17 Mar 2027. Its licenses end on 10 Mar 2027. "
        "To have the card charged instead, use Void and reissue."
    )
    assert void_effect(schedule.if_unpaid({**sub, "method": "invoice"})) == (
        "no other renewal invoice or reminder is sent for this term: the subscription lapses at its end, "
        "10 Mar 2027, and its licenses end with it. To bill the renewal differently, use Void and reissue."
    )
    assert void_effect(None) == "its subscription stays as it is."


async def test_online_a_voided_renewal_is_declined_at_each_try_and_lapses_after_the_last(tree, processor):  # noqa: F811
    sub = await subscribe(tree.direct)
    voided = await _voided_renewal(tree, sub)
    said = await voiding.if_voided(voided)
    assert said is not None and said.method == "online"

    assert (await online.renew_due(DUE, processor=processor))["declined"] == 1
    for retry in said.retries[:-1]:
        assert (await reload(sub))["status"] == "active"
        assert (await online.renew_due(retry, processor=processor))["declined"] == 1
    assert (await online.renew_due(said.lapses_at - timedelta(minutes=1), processor=processor))["claimed"] == 0
    assert (await online.renew_due(said.lapses_at, processor=processor))["lapsed"] == 1

    lapsed = await reload(sub)
    assert (lapsed["status"], lapsed["term_end"]) == ("lapsed", said.licences_end)
    assert processor.calls == []  # the card was never asked
    failed = await mails("renewal_charge_failed")
    assert len(failed) == 3 and all("The renewal invoice was voided." in m["body"] for m in failed)
    assert len(await mails("subscription_lapsed")) == 1
    assert len(await batches_of(tree.direct)) == 1  # no next term
    assert [i["status"] for i in await Invoice.select(Invoice.status)] == ["void"]


async def test_by_invoice_a_voided_renewal_is_not_issued_again_and_lapses_at_the_end(tree):
    sub = await subscribe(tree.direct, method="invoice", card=None)
    voided = await _voided_renewal(tree, sub)
    said = await voiding.if_voided(voided)
    assert said == schedule.Unpaid("invoice", END, (), END)

    for moment in (END - timedelta(days=10), END - timedelta(hours=48)):
        assert await invoice_subscriptions.issue_renewal_invoices(moment) == {"issued": 0, "reminded": 0}
        assert await lapse.lapse_unpaid(moment) == 0
    assert await lapse.lapse_unpaid(said.lapses_at) == 1
    assert (await reload(sub))["status"] == "lapsed"
    assert [i["status"] for i in await Invoice.select(Invoice.status)] == ["void"]


async def test_other_invoices_leave_the_subscription_as_it_is(tree):
    sub = await subscribe(tree.direct)
    voided = await _voided_renewal(tree, sub)
    # Not the next term's (the subscription moved on), or not a renewal: nothing said beyond the invoice.
    assert await voiding.if_voided({**voided, "term_start": END - timedelta(days=365)}) is None
    assert await voiding.if_voided({**voided, "kind": "purchase"}) is None
    assert await voiding.if_voided({**voided, "subscription": None}) is None


async def test_the_void_box_and_the_flash_say_it_for_an_online_renewal(client, tree):
    sub = await subscribe(tree.direct)
    customer = await load_actor(tree.managers["direct"]["id"], None)
    assert customer is not None
    invoice = await invoice_subscriptions.request_invoice(customer, sub["id"], ASKED)
    words = void_effect(schedule.if_unpaid(sub))
    await sign_in(client, tree.email("partner"))
    page = await client.get(f"/invoices/{invoice['id']}")
    assert page.status_code == 200
    assert f"Nothing is issued in its place; {words}</p>" in page.text
    voided = await post_form(
        client, f"/invoices/{invoice['id']}", f"/invoices/{invoice['id']}/void", {"reason": "Wrong address"}
    )
    assert voided.status_code == 302
    (said,) = flashes((await client.get(voided.headers["location"])).text)
    assert said.startswith("Invoice INV-00001 for ") and said.endswith(
        f" voided (reason: Wrong address). Nothing replaces it; {words}"
    )
