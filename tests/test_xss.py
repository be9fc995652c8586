"""Stored XSS, as once found: a customer manager named a learner `Eve'+fetch(...)+'`;
when a partner manager opened the learner and clicked Deactivate, the name ran
as JavaScript in the partner's session (`onsubmit="return confirm('… {{ name }} …')"`:
HTML escaping is not JavaScript escaping). The same with an API key's name.

In Chromium against `portal serve`: the names are stored by the real forms, the
partner clicks through the real confirmations, and nothing of the names runs,
while the actions still work. Two sign-ins: the server allows 10 a minute."""

from __future__ import annotations

import pytest
from playwright.async_api import Dialog, Page, expect

from tests.live_server import LiveServer, new_page, sign_in

pytestmark = pytest.mark.browser

PARTNER = "alex.morgan@northwind-msp.example"
CUSTOMER = "manager@orbit-logistics.example"  # a demo customer the other browser tests leave alone
COMPANY = "Orbit Logistics"
# Each payload also writes localStorage, which outlives the page the form posts from.
LEARNERS = {
    "Eve'+(window.__pwned=localStorage.pwned=1)+'": "eve.xss@orbit-logistics.example",
    'Mallory"><img src=x onerror="window.__pwned=localStorage.pwned=2">\'+(localStorage.pwned=3)+\'': (
        "mallory.xss@orbit-logistics.example"
    ),
}
KEY_NAME = "K'+(localStorage.pwned=4)+'</script><script>localStorage.pwned=5</script>"


class Watch:
    """What the page asked and reported: each confirm() accepted and recorded,
    and any console message about the Content-Security-Policy."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.csp: list[str] = []
        page.on("dialog", self._accept)
        page.on("console", lambda msg: self.csp.append(msg.text) if "Content Security Policy" in msg.text else None)

    async def _accept(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.accept()


async def pwned(page: Page) -> object:
    return await page.evaluate("window.__pwned ?? localStorage.getItem('pwned')")


async def add_learners(page: Page) -> None:
    await sign_in(page, CUSTOMER)
    for name, email in LEARNERS.items():
        await page.get_by_role("navigation").get_by_role("link", name="Admin Dashboard").click()
        await page.get_by_role("link", name="Add User").click()
        await page.get_by_label("Name").fill(name)
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Learner").check()
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("heading", name=f"{name} was added to {COMPANY}")).to_be_visible()
    assert await pwned(page) is None


async def test_names_never_run_as_script_and_the_confirmed_actions_still_work(browser, live_server: LiveServer):
    customer = await new_page(browser, live_server)
    try:
        await add_learners(customer)
    finally:
        await customer.context.close()

    page = await new_page(browser, live_server)
    watch = Watch(page)
    try:
        await sign_in(page, PARTNER)
        for name in LEARNERS:
            await page.get_by_role("navigation").get_by_role("link", name="Company").click()
            await page.get_by_role("link", name=COMPANY, exact=True).click()
            await page.get_by_role("link", name=name, exact=True).click()
            await expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
            await page.get_by_role("button", name="Deactivate").click()
            await expect(page.get_by_test_id("flash")).to_contain_text(f"{name} is deactivated.")
            await expect(page.get_by_text("Deactivated", exact=True)).to_be_visible()
            assert await pwned(page) is None, f"the name {name!r} ran as script"
        assert watch.dialogs == [f"Deactivate {name}? Their seat is freed for someone else." for name in LEARNERS]

        await page.get_by_role("navigation").get_by_role("link", name="API keys").click()
        await page.get_by_label("Name").fill(KEY_NAME)
        await page.get_by_role("button", name="Create key").click()
        await expect(page.get_by_test_id("new-api-key")).to_be_visible()
        row = page.locator("tr").filter(has=page.get_by_role("cell", name=KEY_NAME, exact=True))
        await row.get_by_role("button", name="Revoke").click()
        await expect(row.get_by_text("Revoked")).to_be_visible()
        assert watch.dialogs[-1] == f"Revoke {KEY_NAME}? Anything using it stops working."
        assert await pwned(page) is None, "the key's name ran as script"
        # The pages themselves need nothing the policy forbids.
        assert watch.csp == []
    finally:
        await page.context.close()


async def test_the_policy_blocks_inline_script_that_slips_through(browser, live_server: LiveServer):
    """Defence in depth: were a template to put text into an inline handler again,
    the Content-Security-Policy keeps the browser from running it."""
    page = await new_page(browser, live_server)
    watch = Watch(page)
    try:
        await page.goto("/login")
        await page.evaluate(
            """() => {
                const b = document.createElement("button");
                b.id = "planted";
                b.setAttribute("onclick", "window.__pwned = 'inline'");
                b.textContent = "planted";
                document.body.append(b);
            }"""
        )
        await page.click("#planted")
        assert await pwned(page) is None
        assert any("inline event handler" in m or "script-src" in m for m in watch.csp), watch.csp
    finally:
        await page.context.close()
