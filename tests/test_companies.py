from __future__ import annotations

from portal.domain import companies
from portal.domain.access import load_actor
from portal.tables import AuditEntry, Company
from tests.factories import T0
from tests.support import csrf_headers, post_form, sign_in


async def test_partner_manager_creates_a_customer_under_a_sub_partner(client, tree):
    await sign_in(client, tree.email("partner"))
    response = await post_form(
        client,
        "/companies/new",
        "/companies",
        {"name": "  New   Dental ", "kind": "customer", "parent_id": tree.sub["id"]},
    )
    assert response.status_code in (302, 303)
    created = await Company.select().where(Company.name == "New Dental").first()
    assert created["parent"] == tree.sub["id"]
    assert created["path"] == f"{tree.sub['path']}{created['id']}/"
    page = await client.get(response.headers["location"])
    assert "New Dental" in page.text and "Company created." in page.text
    assert await AuditEntry.exists().where(
        (AuditEntry.action == "company.create") & (AuditEntry.company == created["id"])
    )


async def test_company_form_explains_each_problem_next_to_its_field(client, tree):
    await sign_in(client, tree.email("partner"))
    empty = await post_form(client, "/companies/new", "/companies", {"name": "", "kind": "customer", "parent_id": ""})
    assert empty.status_code == 400
    assert "Enter the company&#39;s name." in empty.text and "Choose where the company stands." in empty.text

    duplicate = await post_form(
        client,
        "/companies/new",
        "/companies",
        {"name": "north customer", "kind": "customer", "parent_id": tree.sub["id"]},
    )
    assert "Acme North already has a company named north customer." in duplicate.text

    under_customer = await post_form(
        client, "/companies/new", "/companies", {"name": "X", "kind": "customer", "parent_id": tree.north["id"]}
    )
    assert "A customer cannot hold a customer." in under_customer.text
    assert await Company.count() == 6  # nothing was written


async def test_search_filters_and_the_fragment_serves_htmx(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/companies", params={"q": "north"})
    assert "<html" in page.text and "North Customer" in page.text and "Direct Customer" not in page.text

    fragment = await client.get(
        "/companies", params={"q": "DIRECT"}, headers={"HX-Request": "true", "HX-Target": "company-results"}
    )
    assert "<html" not in fragment.text
    assert "Direct Customer" in fragment.text and "North Customer" not in fragment.text
    # Boosted navigation also sends HX-Request, without this target: it gets the page.
    boosted = await client.get("/companies", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.text


async def test_search_takes_wildcards_literally(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/companies", params={"q": "%"})
    assert "0 companies" in page.text


async def test_pagination_walks_every_company_once(tree):
    actor = await load_actor(tree.managers["partner"]["id"], None)
    for n in range(60):
        await companies.insert_company(f"Bulk {n:02d}", "customer", tree.partner, T0)
    first = await companies.list_companies(actor, "bulk", 1)
    assert first.total == 60 and first.pages == 3 and len(first.items) == 25
    seen = []
    for number in range(1, first.pages + 1):
        seen += [c["name"] for c in (await companies.list_companies(actor, "bulk", number)).items]
    assert seen == sorted(seen) and len(set(seen)) == 60
    beyond = await companies.list_companies(actor, "bulk", 99)
    assert beyond.items == []


async def test_dashboard_shows_the_tree_under_the_wing(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/dashboard")
    assert page.text.index("Acme MSP") < page.text.index("Acme North")
    assert "Other MSP" not in page.text


async def test_htmx_post_with_header_token_is_accepted(client, tree):
    await sign_in(client, tree.email("partner"))
    headers = await csrf_headers(client, "/companies")
    response = await client.post(f"/companies/{tree.direct['id']}/manage", headers={**headers, "HX-Request": "true"})
    assert response.status_code in (302, 303)
