"""The E-mail settings page: a partner manager sets the reminder days, copies,
Reply-To and sender name; the page says what saving changes before and what it
changed after; bad input gets its message on the form; customers are refused."""

from __future__ import annotations

from portal.domain import partner_settings
from portal.tables import AuditEntry
from tests.support import csrf_of, post_form, sign_in


async def test_a_partner_manager_saves_the_e_mail_settings_and_is_told_what_changed(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/notifications/settings")
    assert page.status_code == 200
    assert "Saving changes the e-mails sent about Acme MSP and the companies under it" in page.text
    assert 'value="3"' in page.text  # the guides' 72 hours, by default
    answer = await post_form(
        client,
        "/notifications/settings",
        "/notifications/settings",
        {
            "reminder_days": "14, 3",
            "copy_account_managers": "on",
            "reply_to": "renewals@acme.example",
            "sender_name": "Acme",
        },
    )
    assert answer.status_code == 303
    said = (await client.get("/notifications/settings")).text
    assert (
        "Reminders now go 14, 3 days before licenses end; account managers get a copy; replies go to "
        "renewals@acme.example; e-mails come from Acme, for Acme MSP and the companies under it." in said
    )
    saved = await partner_settings.for_path(tree.north["path"])
    assert saved.reminder_days == (14, 3) and saved.copy_account_managers and saved.sender_name == "Acme"
    assert await AuditEntry.count().where(AuditEntry.action == "partner_settings.save_emails") == 1


async def test_a_schedule_that_cannot_be_read_is_refused_on_the_form_and_nothing_is_saved(client, tree):
    await sign_in(client, tree.email("partner"))
    answer = await post_form(
        client,
        "/notifications/settings",
        "/notifications/settings",
        {"reminder_days": "soon", "reply_to": "", "sender_name": ""},
    )
    assert answer.status_code == 400
    assert "Give whole numbers of days separated by commas" in answer.text and 'value="soon"' in answer.text
    assert (await partner_settings.for_path(tree.partner["path"])).set_by_company is None


async def test_a_customer_manager_has_no_e_mail_settings(client, tree):
    await sign_in(client, tree.email("north"))
    assert (await client.get("/notifications/settings")).status_code == 403
    page = await client.get("/notifications")
    assert "/notifications/settings" not in page.text
    answer = await client.post(
        "/notifications/settings", data={"_csrf_token": csrf_of(page.text), "reminder_days": "1"}
    )
    assert answer.status_code == 403
    assert (await partner_settings.for_path(tree.north["path"])).set_by_company is None
