"""The portal's own words: what each page says to whom, in one spelling."""

from __future__ import annotations

import io
import json
import re
import tokenize
from datetime import timedelta
from pathlib import Path

import pytest

from portal.domain.billing import catalogue
from portal.domain.errors import ValidationFailed
from portal.domain.orders import decisions, requests
from portal.mail.delivery import deliver_batch
from portal.piccolo_migrations import portal_0010_addon_names as addon_names
from portal.tables import AuditEntry, LicenceOrder, OutboxEmail
from portal.tables.billing import CatalogueItem
from tests.factories import T0
from tests.support import BASE_URL, csrf_headers, post_form, sign_in
from tests.test_billing_catalogue import actor_of
from tests.test_billing_web import flashes
from tests.test_licences_domain import actors, assigned_batch
from tests.test_licences_web import request_licences
from tests.test_notifications import listed, mail

DELIVERY_OFF = "Not sent: e-mail delivery is off"
HOW_TO_TURN_IT_ON = "ask whoever runs the portal to set its SMTP_URL setting to a mail server and restart it"


async def test_request_licenses_in_manage_mode_tells_the_account_manager_what_to_do_next(client, tree):
    await sign_in(client, tree.email("partner"))
    await client.post(f"/companies/{tree.north['id']}/manage", headers=await csrf_headers(client))
    done = await request_licences(client, tree.north["id"], 19)
    page = await client.get(done.headers["location"])
    assert await LicenceOrder.count() == 1
    # The account manager made the request: it was not "sent to your account managers".
    assert "your account managers" not in page.text
    assert (
        "North Customer’s request for 19 licenses is waiting in Requested Orders: "
        "Exit, then Assign it under Licenses → Orders." in page.text
    )


async def test_request_licenses_tells_a_customer_manager_it_went_to_the_account_managers(client, tree):
    await sign_in(client, tree.email("north"))
    done = await request_licences(client, tree.north["id"], 19)
    page = await client.get(done.headers["location"])
    assert "Your request for 19 licenses was sent to your account managers." in page.text


@pytest.mark.no_timers  # it moves e-mails along itself
async def test_an_email_kept_for_want_of_a_mail_server_says_not_sent_and_how_to_turn_delivery_on(client, tree):
    await mail(tree, "north", "Kept here")
    await deliver_batch(T0, None, base_url=BASE_URL)  # no SMTP_URL
    row = await OutboxEmail.select().first()
    assert row["status"] == "captured"
    await sign_in(client, tree.email("partner"))
    for url in ("/notifications", f"/notifications/{row['id']}"):
        page = await listed(client, url)
        assert "Captured" not in page, url
        assert DELIVERY_OFF in page and HOW_TO_TURN_IT_ON in page, url
    assert "Kept, not sent" in await listed(client, f"/notifications/{row['id']}")
    # The Status filter offers it by the same words.
    assert f'<option value="captured" >{DELIVERY_OFF}</option>' in await listed(client)


@pytest.mark.no_timers
async def test_no_delivery_note_while_every_email_went(client, tree):
    await mail(tree, "north", "Queued only")
    await sign_in(client, tree.email("partner"))
    page = await listed(client)
    assert HOW_TO_TURN_IT_ON not in page


def catalogue_section(html: str) -> str:
    return html[html.index('id="catalogue-title"') :]


def whole_catalogue(html: str) -> dict[str, str]:
    """The catalogue form's fields as the page fills them in (checked boxes only)."""
    section = catalogue_section(html)
    fields = dict(re.findall(r'name="((?:price|included_users|name)\.[a-z_]+)"[^>]*?value="([^"]*)"', section))
    fields |= {name: "yes" for name in re.findall(r'name="(active\.[a-z_]+)" value="yes" checked', section)}
    return fields


async def test_the_catalogue_is_one_form_with_one_save(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/billing/settings")
    section = catalogue_section(page.text)
    assert section.count("<form") == 1 and section.count("<button") == 1 and "Save catalogue" in section
    fields = whole_catalogue(page.text)
    assert len([f for f in fields if f.startswith("price.")]) == 8
    fields |= {"price.pro": "7,000.00", "price.report_full": "9000"}
    saved = await post_form(client, "/billing/settings", "/billing/catalogue", fields)
    assert saved.status_code == 302
    page = await client.get("/billing/settings")
    assert flashes(page.text) == [
        "Pro: $7,000.00 USD per year, 10 standard users included; "
        "Human risk assessment report: $9,000.00 USD once. Invoices already issued keep their prices."
    ]
    prices = {i["code"]: i["price_cents"] for i in await catalogue.items(tree.partner["id"])}
    assert (prices["pro"], prices["report_full"], prices["lite"]) == (7_000_00, 9_000_00, 3_000_00)
    # Only what changed is written down.
    assert await AuditEntry.count().where(AuditEntry.action == "billing.catalogue_item.save") == 2


async def test_one_refused_field_saves_nothing_and_keeps_what_was_typed(client, tree):
    await sign_in(client, tree.email("partner"))
    fields = whole_catalogue((await client.get("/billing/settings")).text)
    fields |= {"price.pro": "7000", "price.lite": "lots", "name.onboarding": "Kick-off workshop"}
    fields.pop("active.read_only_user")
    refused = await post_form(client, "/billing/settings", "/billing/catalogue", fields)
    assert refused.status_code == 400
    section = catalogue_section(refused.text)
    lite = section[section.index('data-item="lite"') : section.index('data-item="pro"')]
    assert "Enter a price such as 6000.00." in lite and 'value="lots"' in lite
    assert 'value="7000"' in section and 'value="Kick-off workshop"' in section
    assert 'name="active.read_only_user" value="yes" >' in section
    items = {i["code"]: i for i in await catalogue.items(tree.partner["id"])}
    assert items["pro"]["price_cents"] == 6_000_00 and items["onboarding"]["name"] == "Onboarding online course"
    assert items["read_only_user"]["active"]
    assert await AuditEntry.count().where(AuditEntry.action == "billing.catalogue_item.save") == 0


async def test_the_prepared_reports_are_a_security_awareness_partners_and_it_renames_them(client, tree):
    names = [i["name"] for i in await catalogue.items(tree.partner["id"]) if i["kind"] == "addon"]
    assert names == [
        "Onboarding online course",
        "Phishing simulation report",
        "Security awareness benchmark report",
        "Human risk assessment report",
    ]
    await sign_in(client, tree.email("partner"))
    fields = whole_catalogue((await client.get("/billing/settings")).text)
    saved = await post_form(
        client, "/billing/settings", "/billing/catalogue", fields | {"name.report_summary": "  Phishing  drill review "}
    )
    assert saved.status_code == 302
    assert flashes((await client.get("/billing/settings")).text) == [
        "Phishing drill review: $4,000.00 USD once. Invoices already issued keep their prices."
    ]
    entry = await AuditEntry.select(AuditEntry.detail).where(AuditEntry.action == "billing.catalogue_item.save").first()
    detail = json.loads(entry["detail"])
    assert (detail["name"], detail["old_name"]) == ("Phishing drill review", "Phishing simulation report")
    # The partner's customers buy it under that name; the partner's sub-partner sells under its own.
    client.cookies.clear()
    await sign_in(client, tree.email("direct"))
    buy = await client.get(f"/companies/{tree.direct['id']}/billing/buy")
    assert "Phishing drill review" in buy.text and "Phishing simulation report" not in buy.text
    assert "Network summary report" not in buy.text and "Ecosystem report" not in buy.text
    assert [i["name"] for i in await catalogue.items(tree.sub["id"])][5] == "Phishing simulation report"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("   ", "Give the add-on a name."),
        ("x" * 101, "Use at most 100 characters."),
        ("onboarding ONLINE course", "Another item is already called onboarding ONLINE course."),
        ("Pro", "Another item is already called Pro."),
    ],
)
async def test_an_add_on_name_is_refused_beside_its_field(client, tree, name, message):
    await sign_in(client, tree.email("partner"))
    fields = whole_catalogue((await client.get("/billing/settings")).text)
    refused = await post_form(client, "/billing/settings", "/billing/catalogue", fields | {"name.report_full": name})
    assert refused.status_code == 400
    section = catalogue_section(refused.text)
    assert message in section[section.index('data-item="report_full"') :]
    assert [i["name"] for i in await catalogue.items(tree.partner["id"])][7] == "Human risk assessment report"


async def test_only_an_add_on_is_renamed(tree):
    actor = await actor_of(tree, "partner")
    with pytest.raises(ValidationFailed) as refused:
        await catalogue.save_item(
            actor, tree.partner["id"], "pro", price_cents=1, included_users=1, active=True, now=T0, name="Platinum"
        )
    assert refused.value.errors == {"name": "Only an add-on's name can be changed."}
    # Two add-ons may not swap to one name in one save either.
    with pytest.raises(catalogue.CatalogueRefused) as both:
        await catalogue.save_items(
            actor,
            tree.partner["id"],
            [
                catalogue.ItemChange("report_summary", 1, None, True, "Same"),
                catalogue.ItemChange("report_full", 1, None, True, "same"),
            ],
            now=T0,
        )
    assert set(both.value.by_item) == {"report_summary", "report_full"}
    assert await AuditEntry.count() == 0


async def test_migration_0007_renames_the_first_report_names_a_partner_did_not_change(tree):
    await catalogue.items(tree.partner["id"])
    await catalogue.items(tree.sub["id"])
    # As a seller's rows were before: the network-analysis names, one of them renamed by the partner.
    for partner, code, name in (
        (tree.partner, "report_summary", "Network summary report"),
        (tree.partner, "report_ecosystem", "Ecosystem report"),
        (tree.partner, "report_full", "Full data science report"),
        (tree.sub, "report_summary", "Our own review"),
        (tree.sub, "report_full", "Full data science report"),
    ):
        await CatalogueItem.update({CatalogueItem.name: name}).where(
            (CatalogueItem.partner == partner["id"]) & (CatalogueItem.code == code)
        )

    async def names(partner: dict) -> list[str]:
        return [i["name"] for i in await catalogue.items(partner["id"])][5:]

    step = await addon_names.forwards()
    await step.run()
    assert await names(tree.partner) == [
        "Phishing simulation report",
        "Security awareness benchmark report",
        "Human risk assessment report",
    ]
    assert await names(tree.sub) == [
        "Our own review",
        "Security awareness benchmark report",
        "Human risk assessment report",
    ]
    await step.run(backwards=True)
    assert await names(tree.partner) == ["Network summary report", "Ecosystem report", "Full data science report"]
    assert await names(tree.sub) == ["Our own review", "Ecosystem report", "Full data science report"]


async def test_a_purchase_order_number_is_not_prefixed_with_po_twice(client, tree):
    customer, partner = await actors(tree)
    for po, at in (("PO-1000", T0), ("1001", T0 + timedelta(hours=1))):
        order = await requests.request_order(customer, tree.north["id"], 2, None, po, at)
        await decisions.assign_order(partner, order["id"], at)
    order = await requests.request_order(customer, tree.north["id"], 3, None, "po 77", T0)
    await sign_in(client, tree.email("north"))
    page = await client.get(f"/companies/{tree.north['id']}/licences")
    assert "PO-1000" in page.text and "PO PO-1000" not in page.text
    assert "PO 1001" in page.text
    client.cookies.clear()
    await sign_in(client, tree.email("partner"))
    actions = await client.get(f"/licences/orders/{order['id']}/menu")
    assert ", po 77," in actions.text and "PO po 77" not in actions.text


# "Licence" only where the guides write it so; anything else a user reads says "License".
GUIDE_LABELS = ("Import Licence Renewal", "Renew Licences")
BRITISH = re.compile(r"(?<![\w/.\-])licences?(?![\w\-]|\.\w)", re.IGNORECASE)
ROOT = Path(__file__).resolve().parent.parent


def british_words(text: str) -> list[str]:
    for label in GUIDE_LABELS:
        text = text.replace(label, "")
    return [text[max(0, m.start() - 40) : m.end() + 40] for m in BRITISH.finditer(text)]


def python_strings(path: Path) -> list[str]:
    """The string literals of a module but its docstrings: what it may say to a user."""
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    quiet = (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
    return [
        re.sub(r"\\[ntr]", " ", token.string)
        for n, token in enumerate(tokens)
        if token.type == tokenize.STRING
        and not (
            (n == 0 or tokens[n - 1].type in quiet) and n + 1 < len(tokens) and tokens[n + 1].type == tokenize.NEWLINE
        )
    ]


def test_templates_say_license_but_for_the_guides_labels():
    found = {}
    for path in sorted((ROOT / "templates").rglob("*.*")):
        words = british_words(re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S))
        if words:
            found[str(path.relative_to(ROOT))] = words
    assert found == {}


def test_messages_of_the_portal_say_license():
    found = {}
    for path in sorted((ROOT / "portal").rglob("*.py")):
        if "piccolo_migrations" in path.parts:
            continue
        words = [w for s in python_strings(path) for w in british_words(s)]
        if words:
            found[str(path.relative_to(ROOT))] = words
    assert found == {}


async def test_the_licenses_page_in_one_spelling_with_the_guides_labels_kept(client, tree):
    await assigned_batch(tree, 3, T0)
    await sign_in(client, tree.email("north"))
    page = await client.get(f"/companies/{tree.north['id']}/licences?tab=expired")
    assert "License batches" in page.text and "Expired Licenses" in page.text
    assert british_words(re.sub(r'(href|action|hx-get|id)="[^"]*"', "", page.text)) == []
    imports = await client.get(f"/companies/{tree.north['id']}/imports")
    assert "<h1>Import Licence Renewal</h1>" in imports.text
