"""Expiry e-mails in Chromium: the clock moves to two days before one of Dana's batches
ends, the sweep runs and a worker delivers over SMTP (a real aiosmtpd server),
and Dana finds the reminder on Notifications as sent, opens it, and reads the
text with the renewal link; at 390 px wide too.

The sweep and the delivery run in a process of their own against the live
server's database, with the moved clock: the e-mails they queue are due only
then, so the server's own in-process timers (real clock) leave them alone."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile

import pytest
from playwright.async_api import Browser, expect

from tests.live_server import LiveServer, new_page, sign_in
from tests.test_mail_delivery import SmtpServer

pytestmark = pytest.mark.browser

CUSTOMER = "dana.wells@brightpath-dental.example"
COMPANY = "Brightpath Dental"
SCREENSHOT = "/tmp/notifications-390.png"

SWEEP_AND_DELIVER = """
import asyncio, json, sys
from datetime import timedelta

async def main():
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.notifications_sweep import sweep
    from portal.mail.delivery import drain
    from portal.mail.smtp import smtp_config
    from portal.settings import get_settings
    from portal.tables import Company, LicenceBatch

    await db.open_pool()
    try:
        company = await Company.select(Company.id).where(Company.name == sys.argv[1]).first()
        later = utcnow() + timedelta(hours=96)
        batch = await (
            LicenceBatch.select()
            .where((LicenceBatch.company == company["id"]) & (LicenceBatch.ends_at > later))
            .order_by(LicenceBatch.ends_at)
            .first()
        )
        clock = batch["ends_at"] - timedelta(hours=48)
        written = await sweep(clock)
        done = await drain(smtp_config(), clock=lambda: clock, base_url=get_settings().base_url)
        print(json.dumps({"batch": batch["id"], "written": written, "sent": done.sent}))
    finally:
        await db.close_pool()

asyncio.run(main())
"""


async def sweep_and_deliver(live_server: LiveServer, smtp_port: int) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": live_server.database_url,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}?from=portal@northwind.example",
        "PORTAL_VAR_DIR": tempfile.mkdtemp(prefix="portal-sweep-"),
        "BASE_URL": live_server.url,
    }
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SWEEP_AND_DELIVER,
        COMPANY,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_dana_reads_the_72_hour_reminder_as_sent_with_its_renewal_link(browser: Browser, live_server: LiveServer):
    smtp = SmtpServer()
    smtp.start()
    try:
        result = await sweep_and_deliver(live_server, smtp.port)
    finally:
        smtp.stop()
    assert result["written"]["expiry_reminder"] >= 1 and result["sent"] >= 1
    to_dana = [m for m in smtp.sink.messages if m["To"] == CUSTOMER and "72 hours" in m["Subject"]]
    assert len(to_dana) == 1
    company_id = await live_server.company_id(COMPANY)
    renewal = f"/companies/{company_id}/licences?tab=expired"
    assert renewal in to_dana[0].get_body(("plain",)).get_content()

    page = await new_page(browser, live_server)
    await sign_in(page, CUSTOMER)
    await page.goto("/notifications")
    await expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    await page.get_by_label("Status").select_option("sent")  # htmx swaps the results and the URL follows
    await expect(page).to_have_url(re.compile(r"status=sent"))
    await page.get_by_label("Kind").select_option("expiry_reminder")
    await expect(page).to_have_url(re.compile(r"kind=expiry_reminder"))
    row = page.get_by_test_id("notification-row").filter(has_text=CUSTOMER).first
    await expect(row).to_contain_text("Sent")
    await expect(row).to_contain_text("ends within 72 hours")

    await row.get_by_role("link").click()
    await expect(page.get_by_test_id("notification-status")).to_contain_text("Sent")
    text = page.get_by_test_id("notification-text")
    await expect(text).to_contain_text(renewal)
    await expect(text).to_contain_text("Users losing access")
    frame = page.frame_locator("iframe.mail-html")
    await expect(frame.get_by_role("link", name="Expired Licenses")).to_be_visible()

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto("/notifications")
    await expect(page.get_by_test_id("notification-row").first).to_be_visible()
    await page.screenshot(path=SCREENSHOT, full_page=True)
    await page.context.close()
