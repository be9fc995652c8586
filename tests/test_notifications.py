"""The Notifications page: who sees which e-mails, filters in the URL, one e-mail
as sent (HTML in a sandboxed frame, and text), Resend; the profile's reminder switch."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.domain import outbox
from portal.domain.notifications_sweep import sweep
from portal.mail.delivery import deliver_batch
from portal.tables import AuditEntry, OutboxEmail, User
from tests.factories import T0
from tests.support import BASE_URL, csrf_of, post_form, sign_in
from tests.test_mail_delivery import SmtpServer
from tests.test_mail_sweep import assigned

pytestmark = pytest.mark.no_timers  # these tests move e-mails along themselves


async def mail(tree, key: str, subject: str, body: str = "Hello") -> None:
    company = getattr(tree, key)
    await outbox.queue_email("order_assigned", company["id"], [tree.email(key)], subject, body, T0, dedupe=subject)


async def listed(client, url: str = "/notifications") -> str:
    response = await client.get(url)
    assert response.status_code == 200, response.text[:300]
    return response.text


async def test_partner_managers_see_their_wing_customer_managers_their_company(client, tree):
    await mail(tree, "north", "About North")
    await mail(tree, "direct", "About Direct")
    await mail(tree, "other_customer", "About Other")
    await sign_in(client, tree.email("partner"))
    page = await listed(client)
    assert "About North" in page and "About Direct" in page and "About Other" not in page
    assert 'data-testid="outbox-backlog"' in page
    client.cookies.clear()
    await sign_in(client, tree.email("north"))
    page = await listed(client)
    assert "About North" in page and "About Direct" not in page and "About Other" not in page
    assert "outbox-backlog" not in page  # operators' figure, for partner managers


async def test_the_backlog_line_says_how_many_wait_and_for_how_long(client, tree):
    await mail(tree, "north", "About North")
    await sign_in(client, tree.email("partner"))
    page = await listed(client)
    assert "Outbox: 1 e-mail waiting; the oldest for" in page


async def test_filters_by_status_kind_company_and_day_in_the_url_and_as_a_fragment(client, tree):
    smtp = SmtpServer()
    smtp.start()
    try:
        await mail(tree, "north", "Goes")
        await outbox.queue_email(
            "order_assigned", tree.direct["id"], ["reject-x@direct.example"], "Bounces", "x", T0, dedupe="b"
        )
        await deliver_batch(T0, smtp.config, base_url=BASE_URL)
    finally:
        smtp.stop()
    batch = await assigned(tree, T0)
    await sweep(batch["ends_at"] - timedelta(hours=10))
    await sign_in(client, tree.email("partner"))
    page = await listed(client, "/notifications?status=failed")
    assert "Bounces" in page and "Goes" not in page and "550 5.1.1" in page
    assert '<option value="failed" selected>' in page
    page = await listed(client, "/notifications?kind=expiry_reminder")
    assert "ends within 72 hours" in page and "Bounces" not in page and "Goes" not in page
    page = await listed(client, f"/notifications?company={tree.direct['id']}")
    assert "Bounces" in page and "Goes" not in page
    assert "Bounces" not in await listed(client, "/notifications?day_from=2026-02-01")
    fragment = await client.get(
        "/notifications?status=sent", headers={"HX-Request": "true", "HX-Target": "notification-results"}
    )
    assert "Goes" in fragment.text and "<html" not in fragment.text and "Bounces" not in fragment.text
    # Nonsense in the URL is ignored, not an error.
    assert "Goes" in await listed(client, "/notifications?status=nope&kind=%3Cb%3E&company=x&day_from=tomorrow")


async def test_an_email_opens_as_sent_with_its_html_sandboxed(client, tree):
    batch = await assigned(tree, T0)
    await sweep(batch["ends_at"] - timedelta(hours=10))
    await deliver_batch(batch["ends_at"] - timedelta(hours=10), None, base_url=BASE_URL)
    row = await OutboxEmail.select().where(OutboxEmail.kind == "expiry_reminder").first()
    await sign_in(client, tree.email("north"))
    page = await listed(client, f"/notifications/{row['id']}")
    assert "Not sent: e-mail delivery is off" in page and "Resend" in page
    assert f"/companies/{tree.north['id']}/licences?tab=expired" in page
    assert f'src="/notifications/{row["id"]}/message.html"' in page and "sandbox=" in page
    html = await client.get(f"/notifications/{row['id']}/message.html")
    assert html.status_code == 200 and "Expired Licenses" in html.text
    policy = html.headers["content-security-policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy and html.headers["x-frame-options"] == "SAMEORIGIN"
    # Another tenant's manager: not found, both addresses.
    client.cookies.clear()
    await sign_in(client, tree.email("other"))
    assert (await client.get(f"/notifications/{row['id']}")).status_code == 404
    assert (await client.get(f"/notifications/{row['id']}/message.html")).status_code == 404


async def test_text_from_users_is_escaped_in_the_page_and_the_html(client, tree):
    await mail(tree, "north", "<script>alert(1)</script>", body="<img src=x onerror=alert(1)>")
    await deliver_batch(T0, None, base_url=BASE_URL)
    row = await OutboxEmail.select().first()
    await sign_in(client, tree.email("north"))
    page = await listed(client, f"/notifications/{row['id']}")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    html = await client.get(f"/notifications/{row['id']}/message.html")
    assert "<img src=x" not in html.text and "&lt;img src=x" in html.text


async def test_resend_a_captured_email_from_its_page(client, tree):
    await mail(tree, "north", "Licences ready")
    await deliver_batch(T0, None, base_url=BASE_URL)
    row = await OutboxEmail.select().first()
    await sign_in(client, tree.email("partner"))
    response = await post_form(client, f"/notifications/{row['id']}", f"/notifications/{row['id']}/resend", {})
    assert response.status_code in (302, 303)
    copy = await OutboxEmail.select().where(OutboxEmail.resent_from == row["id"]).first()
    assert response.headers["location"] == f"/notifications/{copy['id']}" and copy["status"] == "queued"
    assert "A copy is queued" in await listed(client, response.headers["location"])
    again = await post_form(client, f"/notifications/{row['id']}", f"/notifications/{row['id']}/resend", {})
    assert again.status_code == 409 and "already waiting" in again.text
    assert await AuditEntry.count().where(AuditEntry.action == "email.resend") == 1


async def test_the_old_outbox_address_leads_to_notifications(client, tree):
    await sign_in(client, tree.email("partner"))
    response = await client.get("/outbox")
    assert response.status_code == 301 and response.headers["location"] == "/notifications"


async def test_a_manager_switches_reminders_off_and_on_in_the_profile(client, tree):
    await sign_in(client, tree.email("north"))
    page = await listed(client, "/profile")
    assert 'name="reminders" value="on" checked' in page
    response = await client.post("/profile", data={"_csrf_token": csrf_of(page)})  # unchecked: off
    assert response.status_code in (302, 303)
    user = await User.select(User.reminders_off).where(User.id == tree.managers["north"]["id"]).first()
    assert user["reminders_off"] is True
    assert "Reminder e-mails are off" in await listed(client, "/profile")
    batch = await assigned(tree, T0)
    await sweep(batch["ends_at"] - timedelta(hours=10))
    assert await OutboxEmail.count().where(OutboxEmail.kind == "expiry_reminder") == 0
    # Order e-mails still come.
    assert await OutboxEmail.count().where(OutboxEmail.kind == "order_assigned") == 1
    page = await listed(client, "/profile")
    await client.post("/profile", data={"_csrf_token": csrf_of(page), "reminders": "on"})
    await sweep(batch["ends_at"] - timedelta(hours=9))
    assert await OutboxEmail.count().where(OutboxEmail.kind == "expiry_reminder") == 1
    assert await AuditEntry.count().where(AuditEntry.action == "profile.reminders") == 2


async def test_a_partner_manager_switches_the_weekly_digest_off_and_on_in_the_profile(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await listed(client, "/profile")
    assert 'name="digest" value="on" checked' in page
    # Reminders kept on, digest unticked: off.
    await client.post("/profile", data={"_csrf_token": csrf_of(page), "reminders": "on"})
    user = (
        await User.select(User.digest_off, User.reminders_off).where(User.id == tree.managers["partner"]["id"]).first()
    )
    assert user == {"digest_off": True, "reminders_off": False}
    page = await listed(client, "/profile")
    assert "The weekly digest is off" in page and 'name="digest" value="on" checked' not in page
    await client.post("/profile", data={"_csrf_token": csrf_of(page), "reminders": "on", "digest": "on"})
    assert "The weekly digest is on" in await listed(client, "/profile")
    assert await AuditEntry.count().where(AuditEntry.action == "profile.digest") == 2


async def test_a_customer_manager_has_no_digest_box_and_saving_the_profile_leaves_the_digest_alone(client, tree):
    await sign_in(client, tree.email("north"))
    page = await listed(client, "/profile")
    assert 'name="digest"' not in page
    await client.post("/profile", data={"_csrf_token": csrf_of(page), "reminders": "on"})
    user = await User.select(User.digest_off).where(User.id == tree.managers["north"]["id"]).first()
    assert user["digest_off"] is False
    assert await AuditEntry.count().where(AuditEntry.action == "profile.digest") == 0
