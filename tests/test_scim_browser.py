"""The company page's SCIM provisioning in Chromium, on a phone: a customer
manager creates a token (shown once, with the address to paste), the token
works, the pages have no axe violation and no sideways scroll, and Revoke says
what it will do before and what it did after."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.live_server import LiveServer, sign_in
from tests.test_accessibility import CUSTOMER, CUSTOMER_COMPANY, PHONE, axe_violations, report

pytestmark = pytest.mark.browser


async def test_a_customer_manager_creates_uses_and_revokes_a_scim_token_on_a_phone(
    browser: Browser, live_server: LiveServer
):
    company = await live_server.company_id(CUSTOMER_COMPANY)
    context = await browser.new_context(base_url=live_server.url, viewport=PHONE)
    try:
        page = await context.new_page()
        await sign_in(page, CUSTOMER)
        await page.goto(f"/companies/{company}")
        section = page.get_by_test_id("scim")
        await expect(section.get_by_role("heading", name="SCIM provisioning")).to_be_visible()
        await expect(section).to_contain_text("shown once")
        assert not await axe_violations(page), report({"company": await axe_violations(page)})

        name = "Entra ID phone test"
        await section.get_by_label("Token name").fill(name)
        await section.get_by_role("button", name="Create token").press("Enter")
        await expect(page.get_by_role("heading", name=f"SCIM token “{name}” created")).to_be_visible()
        await expect(page.get_by_role("status")).to_contain_text("it is not shown again")
        token = await page.get_by_test_id("new-scim-token").input_value()
        scim_url = await page.get_by_test_id("scim-url").input_value()
        assert token.startswith("scim_") and scim_url == f"{live_server.url}/scim/v2"
        found = await axe_violations(page)
        assert not found, report({"created": found})
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        async with httpx.AsyncClient(base_url=scim_url, headers={"Authorization": f"Bearer {token}"}) as scim:
            listed = await scim.get("/Users", params={"count": 1})
            assert listed.status_code == 200 and listed.json()["totalResults"] >= 1

            await page.get_by_role("link", name=f"Back to {CUSTOMER_COMPANY}").click()
            row = page.get_by_test_id("scim-token").filter(has_text=name)
            await expect(row).not_to_contain_text("Never")  # the request above used it
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.once("dialog", lambda dialog: dialog.accept())
            await row.get_by_role("button", name=f"Revoke {name}").click()
            await expect(page.get_by_text(f"Token “{name}” is revoked")).to_be_visible()
            await expect(page.get_by_test_id("scim-token").filter(has_text=name)).to_contain_text("Revoked")
            assert (await scim.get("/Users")).status_code == 401
    finally:
        await context.close()
