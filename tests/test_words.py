"""The portal's own words: what each page says to whom, in one spelling."""

from __future__ import annotations

import pytest

from portal.mail.delivery import deliver_batch
from portal.tables import LicenceOrder, OutboxEmail
from tests.factories import T0
from tests.support import csrf_headers, sign_in
from tests.test_licences_web import request_licences
from tests.test_notifications import listed, mail

DELIVERY_OFF = "Not sent: e-mail delivery is off"
HOW_TO_TURN_IT_ON = "ask whoever runs the portal to set its SMTP_URL setting to a mail server and restart it"


@pytest.fixture
def no_timers(monkeypatch):
    """The e-mail tests move e-mails along themselves."""
    monkeypatch.setenv("PORTAL_IN_PROCESS_JOBS", "off")


async def test_request_licenses_in_manage_mode_tells_the_account_manager_what_to_do_next(client, tree):
    await sign_in(client, tree.email("partner"))
    await client.post(f"/companies/{tree.north['id']}/manage", headers=await csrf_headers(client))
    done = await request_licences(client, tree.north["id"], 19)
    page = await client.get(done.headers["location"])
    assert await LicenceOrder.count() == 1
    # The account manager made the request: it was not "sent to your account managers".
    assert "your account managers" not in page.text
    assert (
        "North Customer’s request for 19 licenses is waiting in Requested Orders: "
        "Exit, then Assign it under Licenses → Orders." in page.text
    )


async def test_request_licenses_tells_a_customer_manager_it_went_to_the_account_managers(client, tree):
    await sign_in(client, tree.email("north"))
    done = await request_licences(client, tree.north["id"], 19)
    page = await client.get(done.headers["location"])
    assert "Your request for 19 licenses was sent to your account managers." in page.text


@pytest.mark.usefixtures("no_timers")
async def test_an_email_kept_for_want_of_a_mail_server_says_not_sent_and_how_to_turn_delivery_on(client, tree):
    await mail(tree, "north", "Kept here")
    await deliver_batch(T0, None)  # no SMTP_URL
    row = await OutboxEmail.select().first()
    assert row["status"] == "captured"
    await sign_in(client, tree.email("partner"))
    for url in ("/notifications", f"/notifications/{row['id']}"):
        page = await listed(client, url)
        assert "Captured" not in page, url
        assert DELIVERY_OFF in page and HOW_TO_TURN_IT_ON in page, url
    assert "Kept, not sent" in await listed(client, f"/notifications/{row['id']}")
    # The Status filter offers it by the same words.
    assert f'<option value="captured" >{DELIVERY_OFF}</option>' in await listed(client)


@pytest.mark.usefixtures("no_timers")
async def test_no_delivery_note_while_every_email_went(client, tree):
    await mail(tree, "north", "Queued only")
    await sign_in(client, tree.email("partner"))
    page = await listed(client)
    assert HOW_TO_TURN_IT_ON not in page
