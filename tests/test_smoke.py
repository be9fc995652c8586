from tests.support import sign_in


async def test_partner_manager_lands_on_dashboard(client, tree):
    response = await sign_in(client, tree.email("partner"))
    assert response.headers["location"] == "/dashboard"
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert "Acme North" in page.text
