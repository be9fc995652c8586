from __future__ import annotations

import asyncio
import re

import pytest

from portal import db
from portal.domain import companies
from portal.domain.access import load_actor
from portal.tables import AuditEntry, Company, LicenceOrder
from tests.factories import T0
from tests.support import csrf_headers, csrf_of, post_form, sign_in


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
    assert "New Dental" in page.text and "New Dental was created." in page.text
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


# --- Create Company: one company per submission, names unique among siblings ---


def _company_form(page: str) -> dict:
    """The hidden fields of the Create Company form, as a browser would send them."""
    return {
        "_csrf_token": csrf_of(page),
        "form_token": re.search(r'name="form_token" value="([^"]+)"', page).group(1),
    }


async def test_sibling_names_are_unique_in_the_database_whatever_the_case(tree):
    for parent, taken in ((tree.sub, "NORTH customer"), (None, "acme msp")):
        with pytest.raises(Exception) as refused:
            async with db.write_transaction():
                await companies.insert_company(taken, "customer", parent, T0)
        assert db.is_unique_violation(refused.value), refused.value
    # The same name under another parent is fine.
    await companies.insert_company("North Customer", "customer", tree.partner, T0)


async def test_a_second_post_of_the_same_form_lands_on_the_first_company(client, tree):
    await sign_in(client, tree.email("partner"))
    hidden = _company_form((await client.get("/companies/new")).text)
    form = {"name": "Twice Dental", "kind": "customer", "parent_id": tree.partner["id"], "first_order": "7", **hidden}
    first = await client.post("/companies", data=form)
    second = await client.post("/companies", data=form)
    assert first.status_code == second.status_code == 302
    assert first.headers["location"] == second.headers["location"]
    assert await Company.count().where(Company.name == "Twice Dental") == 1
    assert await LicenceOrder.count() == 1


async def test_a_spent_form_sent_again_with_another_name_says_so(client, tree):
    await sign_in(client, tree.email("partner"))
    hidden = _company_form((await client.get("/companies/new")).text)
    base = {"kind": "customer", "parent_id": tree.partner["id"], **hidden}
    assert (await client.post("/companies", data={**base, "name": "First Co"})).status_code == 302
    again = await client.post("/companies", data={**base, "name": "Second Co"})
    assert again.status_code == 400
    assert "This form already created First Co." in again.text
    assert _company_form(again.text)["form_token"] != hidden["form_token"]  # a fresh filling
    assert not await Company.exists().where(Company.name == "Second Co")


@pytest.mark.parametrize("same_form", [True, False], ids=["double-click", "two-forms"])
async def test_twenty_simultaneous_posts_make_one_company_and_one_first_order(client, tree, same_form):
    await sign_in(client, tree.email("partner"))
    pages = [(await client.get("/companies/new")).text for _ in range(1 if same_form else 20)]
    forms = [
        {
            "name": "Race Dental",
            "kind": "customer",
            "parent_id": tree.sub["id"],
            "first_order": "12",
            **_company_form(p),
        }
        for p in pages
    ]
    answers = await asyncio.gather(*(client.post("/companies", data=forms[n % len(forms)]) for n in range(20)))
    assert await Company.count().where(Company.name == "Race Dental") == 1
    assert await LicenceOrder.count() == 1
    created = await Company.select(Company.id).where(Company.name == "Race Dental").first()
    for answer in answers:
        if same_form or answer.status_code != 302:
            assert answer.status_code in (302, 400), answer.text[:300]
        if answer.status_code == 302:
            assert answer.headers["location"] == f"/companies/{created['id']}"
        else:
            assert "Acme North already has a company named Race Dental." in answer.text
    winners = sum(a.status_code == 302 for a in answers)
    assert winners == 20 if same_form else winners == 1
