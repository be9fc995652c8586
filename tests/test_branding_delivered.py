"""A partner's reminders as its customers receive them, end to end: the partner
chooses the days, writes the words and sets its logo and colour; the sweep
queues each reminder on the partner's days; delivery sends it over real SMTP
(aiosmtpd on loopback) in the partner's words, with its logo and colour, while
another partner's customer gets the standard words. Both engines."""

from __future__ import annotations

from datetime import timedelta

from portal.domain.access import load_actor
from portal.domain.branding import brand, templates
from portal.domain.notifications_sweep import sweep
from portal.domain.orders import decisions, requests
from portal.mail.delivery import deliver_batch
from tests.factories import T0
from tests.support import BASE_URL
from tests.test_mail_delivery import smtp  # noqa: F401  (the fixture: a real SMTP server on loopback)
from tests.test_reminder_schedules import assigned, set_emails

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
DAY = timedelta(days=1)


async def assigned_by_other_partner(tree) -> dict:
    customer = await load_actor(tree.managers["other_customer"]["id"], None)
    other = await load_actor(tree.managers["other"]["id"], None)
    order = await requests.request_order(customer, tree.other_customer["id"], 4, None, "", T0)
    return await decisions.assign_order(other, order["id"], T0)


def parts(message) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


async def test_reminders_go_on_the_partner_s_days_in_its_words_with_its_logo(tree, smtp):  # noqa: F811
    partner = await load_actor(tree.managers["partner"]["id"], None)
    await set_emails(tree, "partner", "10")
    await templates.save(
        partner,
        "expiry_reminder",
        subject="{{ seats }} seats of {{ company_name }} end in {{ within }}",
        body="Hello from Acme.\n{{ losing }} of your people lose their training on {{ ends }}.",
        now=T0,
    )
    _, saved = await brand.save(partner, colour="#7A3E9D", logo=PNG, remove_logo=False, now=T0)
    ours = await assigned(tree, "north", seats=10)
    theirs = await assigned_by_other_partner(tree)
    await deliver_batch(T0, smtp.config, base_url=BASE_URL)  # the orders' own e-mails (requested, assigned)
    smtp.sink.messages.clear()

    # Eleven days before the end nothing is due; on the partner's tenth day one reminder each.
    await sweep(ours["ends_at"] - 11 * DAY)
    assert (await deliver_batch(ours["ends_at"] - 11 * DAY, smtp.config, base_url=BASE_URL)).claimed == 0
    await sweep(ours["ends_at"] - 10 * DAY + timedelta(hours=1))
    await sweep(theirs["ends_at"] - 3 * DAY + timedelta(hours=1))
    await deliver_batch(theirs["ends_at"] - 3 * DAY + timedelta(hours=2), smtp.config, base_url=BASE_URL)

    by_to = {m["To"]: m for m in smtp.sink.messages}
    assert sorted(by_to) == sorted([tree.email("north"), tree.email("other_customer")])
    north = by_to[tree.email("north")]
    assert north["Subject"] == "10 seats of North Customer end in 10 days"
    text, html = parts(north)
    assert "Hello from Acme." in text and "lose their training on" in text
    assert "border-top:6px solid #7a3e9d" in html and f"{saved.logo_path}" in html

    # Another partner's customer: the standard words, no logo, no colour of Acme's.
    other = by_to[tree.email("other_customer")]
    other_text, other_html = parts(other)
    assert "Hello from Acme." not in other_text and "/brand/logo/" not in other_html
    assert "#7a3e9d" not in other_html

    # Swept again the same day: nothing more is sent.
    await sweep(ours["ends_at"] - 10 * DAY + timedelta(hours=7))
    assert (
        await deliver_batch(ours["ends_at"] - 10 * DAY + timedelta(hours=8), smtp.config, base_url=BASE_URL)
    ).claimed == 0
