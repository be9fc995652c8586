from __future__ import annotations

from portal.tables import AuditEntry
from tests.support import csrf_headers, sign_in


async def test_manage_company_shows_a_banner_everywhere_and_exit_returns(client, tree):
    await sign_in(client, tree.email("partner"))
    headers = await csrf_headers(client)
    entered = await client.post(f"/companies/{tree.north['id']}/manage", headers=headers)
    assert entered.headers["location"] == f"/companies/{tree.north['id']}"

    for path in ("/", f"/companies/{tree.north['id']}", f"/companies/{tree.north['id']}/users/new"):
        page = await client.get(path, follow_redirects=True)
        assert 'data-testid="manage-banner"' in page.text, path
        assert "Managing <strong>North Customer</strong>" in page.text

    left = await client.post("/manage/exit", headers=headers)
    assert left.headers["location"] == "/dashboard"
    page = await client.get("/dashboard")
    assert page.status_code == 200 and "Admin Dashboard" in page.text
    assert "manage-banner" not in page.text

    entries = await AuditEntry.select(AuditEntry.action, AuditEntry.actor, AuditEntry.company).order_by(AuditEntry.id)
    partner_id = tree.managers["partner"]["id"]
    assert [e for e in entries if e["action"].startswith("manage.")] == [
        {"action": "manage.enter", "actor": partner_id, "company": tree.north["id"]},
        {"action": "manage.exit", "actor": partner_id, "company": tree.north["id"]},
    ]
    log = await client.get("/audit")
    assert log.status_code == 200
    assert "Entered North Customer with Manage Company" in log.text
    assert "Left North Customer (Exit from Manage Company)" in log.text


async def test_manage_company_is_for_customers(client, tree):
    await sign_in(client, tree.email("partner"))
    response = await client.post(f"/companies/{tree.sub['id']}/manage", headers=await csrf_headers(client))
    assert response.status_code == 403
    assert "Manage Company is for customer companies." in response.text


async def test_the_audit_log_shows_only_the_wing(client, tree):
    await sign_in(client, tree.email("partner"))
    await client.post(f"/companies/{tree.direct['id']}/manage", headers=await csrf_headers(client))
    await client.post("/manage/exit", headers=await csrf_headers(client))
    await sign_in(client, tree.email("sub"))
    await client.post(f"/companies/{tree.north['id']}/manage", headers=await csrf_headers(client))
    await client.post("/manage/exit", headers=await csrf_headers(client))
    log = await client.get("/audit")
    # The sub-partner's own entries are there; the partner's entry about a company beside it is not.
    assert log.status_code == 200 and "North Customer" in log.text
    assert "Direct Customer" not in log.text
