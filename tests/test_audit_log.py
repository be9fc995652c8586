"""The audit log people can read: every entry in words, filtered by who, what,
company and dates within the wing only, a page at a time from a cursor (both
directions, past 60 entries), exported as CSV, and kept for the period the
partner chose."""

from __future__ import annotations

import ast
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta

from portal.domain import audit
from portal.domain.access import load_actor
from portal.domain.audit import retention
from portal.domain.audit.sentences import SENTENCES
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.orders import decisions, requests
from portal.tables import AuditEntry
from tests.factories import insert_company
from tests.support import csrf_headers, post_form, sign_in

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SECRET = b"test cursor key"
PORTAL = Path(__file__).resolve().parent.parent / "portal"
_ACTION = re.compile(r"[a-z_]+(\.[a-z_]+)*")


# --- Every action has its own sentence -------------------------------------------


def _strings(node: ast.AST, module: ast.Module) -> set[str]:
    """The action strings an expression can be: constants, both sides of an `x if c
    else y`, an f-string's fixed start ("user.create_" + "*"), a name assigned in the
    module, or a parameter of the enclosing function, from that function's calls."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body, module) | _strings(node.orelse, module)
    if isinstance(node, ast.JoinedStr):
        head = node.values[0]
        assert isinstance(head, ast.Constant), ast.unparse(node)
        return {f"{head.value}*"}
    if isinstance(node, ast.Name):
        found: set[str] = set()
        for other in ast.walk(module):
            if isinstance(other, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == node.id for t in other.targets
            ):
                found |= _strings(other.value, module)
            if isinstance(other, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = [a.arg for a in other.args.args]
                if node.id in params:
                    index = params.index(node.id)
                    for call in ast.walk(module):
                        if (
                            isinstance(call, ast.Call)
                            and getattr(call.func, "id", None) == other.name
                            and len(call.args) > index
                        ):
                            found |= _strings(call.args[index], module)
        assert found, f"cannot tell which actions {node.id} stands for"
        return found
    raise AssertionError(f"cannot tell which action {ast.unparse(node)} is")


def recorded_actions() -> dict[str, str]:
    """Every action the portal's source writes to the audit log → where: audit.record
    calls, AuditEntry(action=…), the (action, company, detail) tuples of audit_many,
    and INSERT INTO audit_entry statements with the action written in."""
    found: dict[str, str] = {}
    for path in sorted(PORTAL.rglob("*.py")):
        if "piccolo_migrations" in path.parts or path.parent.name == "audit" and path.name == "sentences.py":
            continue
        source = path.read_text()
        module = ast.parse(source)
        where = str(path.relative_to(PORTAL.parent))
        for node in ast.walk(module):
            expressions: list[ast.AST] = []
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                owner = getattr(node.func, "value", None)
                by_record = getattr(owner, "id", None) == "audit" or (owner is None and path.parent.name == "audit")
                if name == "record" and by_record and len(node.args) > 1:
                    expressions.append(node.args[1])
                if name == "AuditEntry":
                    # audit.record itself writes the action it is handed: its callers are scanned.
                    expressions += [
                        k.value
                        for k in node.keywords
                        if k.arg == "action" and not (path.name == "entries.py" and isinstance(k.value, ast.Name))
                    ]
            if (
                "audit_many" in source
                and isinstance(node, ast.Tuple)
                and len(node.elts) == 3
                and isinstance(node.elts[0], ast.Constant)
                and isinstance(node.elts[0].value, str)
                and "." in node.elts[0].value
            ):
                expressions.append(node.elts[0])
            for expression in expressions:
                for action in _strings(expression, module):
                    found[action] = where
        for match in re.finditer(r"INSERT INTO audit_entry[^;]*?SELECT[^']*'([a-z_.]+)'", source):
            found[match.group(1)] = where
    return found


def test_the_scan_finds_the_actions_written_every_way():
    found = recorded_actions()
    assert {"order.decline", "order.cancel"} <= set(found)  # audit.record, and an `x if c else y`
    assert {"subscription.cancel", "subscription.confirm_cancellation"} <= set(found)  # a parameter
    assert {"subscription.provision", "company.create"} <= set(found)  # AuditEntry(action=…)
    assert {"subscription.lapse", "invoice.issue"} <= set(found)  # audit_many
    assert "batch.auto_renew" in found  # INSERT INTO audit_entry … SELECT
    assert "user.create_*" in found  # an f-string
    assert {"sign_in", "audit.retention.save"} <= set(found)  # the audit package's own
    assert len(found) >= 45


def test_every_action_the_portal_records_has_a_sentence_of_its_own():
    missing = []
    for action, where in sorted(recorded_actions().items()):
        assert _ACTION.fullmatch(action.rstrip("*").rstrip(".")), (action, where)
        if action.endswith("*"):
            known = action[:-1] in SENTENCES.prefixes or action[:-1].rstrip(".") + "." in SENTENCES.prefixes
        else:
            known = action in SENTENCES.kinds or SENTENCES.kind(action) is not None
        if not known:
            missing.append(f"{action} ({where})")
    assert not missing, "audit actions without a sentence in portal/domain/audit/sentences.py: " + ", ".join(missing)


# --- Sentences -------------------------------------------------------------------

REASON = "Please order through your distributor's portal from now on, as agreed in the contract of March"


@pytest.mark.parametrize(
    ("action", "detail", "said"),
    [
        (
            "order.decline",
            {"order": 7, "seats": 25, "reason": REASON},
            "Declined an order of 25 seats for Brightpath Dental: 'Please order through your distributor's "
            "portal from now on, as agreed in the co…'",
        ),
        ("order.decline", {"order": 7, "reason": "No"}, "Declined order #7 for Brightpath Dental: 'No'"),
        ("sign_in", {"method": "passkey", "ip": "203.0.113.9"}, "Signed in with a passkey from 203.0.113.9"),
        ("sign_in", {}, "Signed in"),
        (
            "order.request",
            {"order": 3, "quantity": 1, "product": "sat-premium"},
            "Requested 1 Premium seat for Brightpath Dental",
        ),
        ("order.assign", {"order": 3, "batch": 4, "seats": 10}, "Assigned an order of 10 seats to Brightpath Dental"),
        ("manage.enter", {"company": "Brightpath Dental"}, "Entered Brightpath Dental with Manage Company"),
        (
            "invoice.paid",
            {"invoice": 9, "number": "INV-00009", "method": "card", "total_cents": 123456, "currency": "USD"},
            "Recorded invoice INV-00009 of Brightpath Dental as paid by card ($1,234.56 USD)",
        ),
        (
            "user.create_read_only",
            {"email": "kim@example.com"},
            "Added kim@example.com to Brightpath Dental as a read-only manager",
        ),
        (
            "user.change_role",
            {"user": "kim@example.com", "role": "billing", "was": "partner_admin"},
            "Made kim@example.com of Brightpath Dental billing staff (was a partner admin)",
        ),
        (
            "licences.allocate",
            {"batch": 1, "renewed": 3, "selected": 5},
            "Gave seats to 3 of 5 selected users of Brightpath Dental",
        ),
        ("auto_renewal.set", {"mode": "off"}, "Turned automatic renewal off for Brightpath Dental"),
        ("profile.reminders", {"reminders": False}, "Turned their own expiry reminders off"),
        ("profile.digest", {"digest": False}, "Turned their own weekly digest off"),
        # Not known (yet): a generic sentence, not an error.
        ("refund.issue", {"amount_cents": 5}, "Refund issue for Brightpath Dental"),
        # A detail older or odder than the sentence expects: the generic sentence too.
        ("partner_settings.save", {"max_order_quantity": "lots"}, "Partner settings save for Brightpath Dental"),
        ("order.decline", "not json", "Declined an order for Brightpath Dental"),
    ],
)
def test_entries_read_as_sentences(action, detail, said):
    assert SENTENCES.sentence(action, detail, "Brightpath Dental") == said


def test_an_entry_about_a_company_no_longer_there_still_reads():
    assert SENTENCES.sentence("manage.exit", {}, None) == "Left a company no longer there (Exit from Manage Company)"


def test_every_sentence_survives_an_empty_detail():
    for kind in SENTENCES:
        action = kind.action + ("manager" if kind.action.endswith("_") else "")
        said = SENTENCES.sentence(action, {}, "Brightpath Dental")
        assert said and "None" not in said and "()" not in said and "  " not in said, (action, said)
        assert not said.endswith((" ", " to", " of", ":")), (action, said)


async def test_declining_an_order_is_audited_with_its_seats_and_reason(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    customer = await load_actor(tree.managers["north"]["id"], None)
    order = await requests.request_order(customer, tree.north["id"], 25, None, "", NOW)
    await decisions.decline_order(partner, order["id"], "Please order through the distributor.", NOW)
    page = await audit.list_entries(partner, {}, None, SECRET)
    sentences = [e["sentence"] for e in page.items]
    assert sentences[0] == "Declined an order of 25 seats for North Customer: 'Please order through the distributor.'"
    assert sentences[1] == "Requested 25 Premium seats for North Customer"
    assert page.items[0]["actor_name"] == tree.managers["partner"]["email"].split("@")[0].title()


# --- Filters and the wing ----------------------------------------------------------


async def _entries(tree) -> dict:
    """Entries by the partner's, the sub-partner's and the other partner's managers."""
    partner, sub, other = [await load_actor(tree.managers[k]["id"], None) for k in ("partner", "sub", "other")]
    day = timedelta(days=1)
    await audit.record(partner, "manage.enter", tree.direct["id"], NOW - 3 * day, {})
    await audit.record(partner, "order.assign", tree.north["id"], NOW - 2 * day, {"seats": 4})
    await audit.record(sub, "order.decline", tree.north["id"], NOW - day, {"seats": 2, "reason": "No"})
    await audit.record(sub, "api_key.create", tree.sub["id"], NOW, {"name": "CRM", "prefix": "lp_ab"})
    await audit.record(other, "order.assign", tree.other_customer["id"], NOW, {"seats": 9})
    return {"partner": partner, "sub": sub, "other": other}


def _said(page) -> list[str]:
    return [e["sentence"] for e in page.items]


async def test_filters_narrow_by_who_what_company_and_dates(tree):
    actors = await _entries(tree)
    partner = actors["partner"]
    spec = audit.AUDIT_FILTERS

    async def said(**values) -> list[str]:
        return _said(await audit.list_entries(partner, spec.values(**values), None, SECRET))

    assert len(await said()) == 4
    assert await said(who=tree.managers["sub"]["id"]) == [
        "Created the API key 'CRM' (lp_ab…)",
        "Declined an order of 2 seats for North Customer: 'No'",
    ]
    assert await said(company=tree.north["id"]) == [
        "Declined an order of 2 seats for North Customer: 'No'",
        "Assigned an order of 4 seats to North Customer",
    ]
    assert await said(what="orders") == [
        "Declined an order of 2 seats for North Customer: 'No'",
        "Assigned an order of 4 seats to North Customer",
    ]
    assert await said(what="access") == ["Entered Direct Customer with Manage Company"]
    assert await said(what="other") == []
    d = (NOW - timedelta(days=2)).date()
    assert await said(**{"from": d, "to": d}) == ["Assigned an order of 4 seats to North Customer"]
    assert await said(who=tree.managers["sub"]["id"], company=tree.north["id"], what="orders") == [
        "Declined an order of 2 seats for North Customer: 'No'"
    ]


async def test_an_unknown_action_is_found_under_anything_else(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    await audit.record(partner, "refund.issue", tree.north["id"], NOW, {})
    await audit.record(partner, "user.create_learner", tree.north["id"], NOW, {"email": "a@b.example"})
    page = await audit.list_entries(partner, {"what": "other"}, None, SECRET)
    assert _said(page) == ["Refund issue for North Customer"]
    page = await audit.list_entries(partner, {"what": "licenses"}, None, SECRET)
    assert _said(page) == ["Added a@b.example to North Customer as a learner"]


async def test_another_partners_entries_never_show_not_even_through_filter_ids(tree):
    actors = await _entries(tree)
    partner, sub = actors["partner"], actors["sub"]
    other_manager, other_customer = tree.managers["other"]["id"], tree.other_customer["id"]
    for values in ({}, {"who": other_manager}, {"company": other_customer}, {"company": tree.other["id"]}):
        page = await audit.list_entries(partner, values, None, SECRET)
        assert all("Other" not in (e["company_name"] or "") for e in page.items), values
        if values:
            assert page.total == 0 and page.items == []
    # The sub-partner sees its wing only: not the partner's entry about a customer beside it.
    page = await audit.list_entries(sub, {}, None, SECRET)
    assert {e["company_name"] for e in page.items} == {"North Customer", "Acme North"}
    choices = await audit.filter_choices(partner, {"who", "company", "what"})
    assert other_manager not in {c["id"] for c in choices["who"]}
    assert {c["name"] for c in choices["company"]} == {"Acme MSP", "Acme North", "North Customer", "Direct Customer"}
    sub_choices = await audit.filter_choices(sub, {"who"})
    # The partner's manager may act on North Customer, under the sub-partner's wing: named there.
    assert {c["id"] for c in sub_choices["who"]} == {tree.managers[k]["id"] for k in ("partner", "sub", "north")}
    customer = await load_actor(tree.managers["north"]["id"], None)
    with pytest.raises(PermissionDenied):
        await audit.list_entries(customer, {}, None, SECRET)


# --- Pages from a cursor -------------------------------------------------------------


async def test_pages_walk_past_60_entries_both_ways_with_ties_on_the_instant(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    # 65 entries; pairs share their instant, so the id decides between them.
    for n in range(65):
        await audit.record(partner, "order.assign", tree.north["id"], NOW - timedelta(minutes=n // 2), {"seats": n})
    everything = [
        row["id"]
        for row in await AuditEntry.select(AuditEntry.id).order_by(AuditEntry.at, AuditEntry.id, ascending=False)
    ]
    pages, cursor = [], None
    while True:
        page = await audit.list_entries(partner, {}, cursor, SECRET)
        assert page.total == 65
        pages.append([e["id"] for e in page.items])
        if not page.has_next:
            break
        cursor = page.next_cursor
    assert [len(p) for p in pages] == [25, 25, 15]
    assert sum(pages, []) == everything
    assert not page.has_next and page.has_previous
    # Back from the last page to the first, the same pages.
    back = [pages[-1]]
    while page.has_previous:
        page = await audit.list_entries(partner, {}, page.previous_cursor, SECRET)
        back.append([e["id"] for e in page.items])
    assert back[::-1] == pages
    assert not page.has_previous and page.has_next


async def test_a_cursor_edited_or_signed_otherwise_is_the_first_page(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    for n in range(30):
        await audit.record(partner, "order.assign", tree.north["id"], NOW - timedelta(minutes=n), {"seats": n})
    first = await audit.list_entries(partner, {}, None, SECRET)
    second = await audit.list_entries(partner, {}, first.next_cursor, SECRET)
    assert second.items[0]["id"] != first.items[0]["id"]
    assert first.next_cursor
    body, _, signature = first.next_cursor.partition(".")
    for bad in (
        "x" + first.next_cursor,
        body + "." + signature[::-1],
        body,
        "🙂",
        "a.b.c",
        "",
    ):
        page = await audit.list_entries(partner, {}, bad, SECRET)
        assert [e["id"] for e in page.items] == [e["id"] for e in first.items], bad
    assert (await audit.list_entries(partner, {}, first.next_cursor, b"another key")).items == first.items


# --- The web page and its CSV ---------------------------------------------------------


async def test_the_page_filters_escapes_user_text_and_exports_what_it_shows(client, tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    tricky = await insert_company('=HYPERLINK("http://x")', "customer", tree.partner, NOW)
    await audit.record(partner, "order.decline", tree.north["id"], NOW, {"seats": 3, "reason": "<b>not</b> now"})
    await audit.record(partner, "manage.enter", tricky["id"], NOW - timedelta(hours=1), {})
    await audit.record(partner, "manage.enter", tree.direct["id"], NOW - timedelta(hours=2), {})
    await sign_in(client, tree.email("partner"))
    page = await client.get("/audit", params={"company": tree.north["id"]})
    assert page.status_code == 200
    assert "Declined an order of 3 seats for North Customer: &#39;&lt;b&gt;not&lt;/b&gt; now&#39;" in page.text
    assert "<b>not</b>" not in page.text and "Direct Customer with Manage Company" not in page.text
    assert 'data-filter="company"' in page.text  # the chip of the filter in the URL
    assert f"/audit/export.csv?company={tree.north['id']}" in page.text

    field = await client.get("/audit/filters/who")
    assert field.status_code == 200 and 'name="who"' in field.text

    download = await client.get("/audit/export.csv", params={"what": "access"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text.lstrip("\ufeff"))))
    assert rows[0] == ["When (UTC)", "Who", "E-mail", "What", "Company", "Acting as", "Action"]
    name = tree.managers["partner"]["email"].split("@")[0].title()
    assert [r for r in rows[1:] if r[6] == "manage.enter"] == [
        [
            "2026-12-07T11:00:00Z",
            name,
            tree.email("partner"),
            'Entered =HYPERLINK("http://x") with Manage Company',
            '\'=HYPERLINK("http://x")',  # a formula is written as text
            "",
            "manage.enter",
        ],
        [
            "2026-12-07T10:00:00Z",
            name,
            tree.email("partner"),
            "Entered Direct Customer with Manage Company",
            "Direct Customer",
            "",
            "manage.enter",
        ],
    ]


async def test_the_csv_holds_every_entry_not_one_page(client, tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    for n in range(70):
        await audit.record(partner, "order.assign", tree.north["id"], NOW - timedelta(minutes=n), {"seats": n})
    chunks = [c async for c in audit.iter_entries(partner, {"company": tree.north["id"]}, chunk=30)]
    assert [len(c) for c in chunks] == [30, 30, 10]
    assert [e["detail"]["seats"] for c in chunks for e in c] == list(range(70))


# --- How long the log is kept -----------------------------------------------------------


async def test_retention_is_inherited_the_longest_wins_and_has_bounds(tree):
    partner, sub = [await load_actor(tree.managers[k]["id"], None) for k in ("partner", "sub")]
    assert (await retention.for_path(tree.north["path"])).months == 24
    await retention.save(partner, 12, NOW)
    assert (await retention.for_path(tree.north["path"])) == retention.Retention(12, tree.partner["id"], "Acme MSP")
    await retention.save(sub, 36, NOW)
    assert (await retention.for_path(tree.north["path"])).months == 36
    assert (await retention.for_path(tree.direct["path"])).months == 12
    assert (await retention.for_path(tree.other_customer["path"])).months == 24
    for months in (11, 121, 0, -5):
        with pytest.raises(ValidationFailed):
            await retention.save(partner, months, NOW)
    await retention.save(partner, 48, NOW)
    with pytest.raises(ValidationFailed) as refused:
        await retention.save(sub, 40, NOW)  # shorter than the partner above keeps it
    assert "Acme MSP keeps it 48 months" in refused.value.errors["keep_months"]
    customer = await load_actor(tree.managers["north"]["id"], None)
    with pytest.raises(PermissionDenied):
        await retention.save(customer, 24, NOW)
    said = await audit.list_entries(partner, {"what": "settings"}, None, SECRET)
    assert _said(said)[0] == "Set Acme MSP to keep the audit log for 48 months"


async def test_the_sweep_deletes_only_entries_older_than_their_partner_keeps_them(tree):
    partner, sub, other = [await load_actor(tree.managers[k]["id"], None) for k in ("partner", "sub", "other")]
    await retention.save(partner, 12, NOW)
    await retention.save(sub, 36, NOW)
    months = relativedelta(months=1)
    ages = {"direct": 13, "north": 30, "other_customer": 25}
    for key, age in ages.items():
        for extra in (0, 1):
            await audit.record(
                partner, "manage.enter", tree.__dict__[key]["id"], NOW - (age + extra * 12) * months, {"k": key}
            )
    await audit.record(other, "api_key.create", tree.other["id"], NOW - 23 * months, {})
    await audit.record(None, "partner.create", None, NOW - 30 * months, {})
    # A claim read by the billing rules: kept whatever its age.
    await AuditEntry.insert(
        AuditEntry(
            at=NOW - 40 * months,
            company=tree.direct["id"],
            action="subscription.provision",
            detail={},
            dedupe_key="provision:1",
        )
    )
    deleted = await retention.delete_old(NOW, chunk=1)
    left = await AuditEntry.select(AuditEntry.company, AuditEntry.action, AuditEntry.at).output(load_json=True)
    kept = {
        (r["company"], r["action"], round((NOW - r["at"]).days / 30.4))
        for r in left
        if r["action"] != "audit.retention.save"
    }
    assert kept == {
        (tree.north["id"], "manage.enter", 30),  # under the sub-partner: 36 months
        (tree.other["id"], "api_key.create", 23),  # the other partner: the default 24
        (tree.direct["id"], "subscription.provision", 40),  # a claim
    }
    # Gone: direct at 13 and 25 (12 months), north at 42 (36), the other customer's at 25 and 37,
    # and the one about no company (the default, 24).
    assert deleted == 6
    assert await retention.delete_old(NOW) == 0


async def test_a_partner_manager_sets_the_period_on_the_audit_page(client, tree):
    await sign_in(client, tree.email("sub"))
    page = await client.get("/audit")
    assert "kept for 24 months (the default)" in page.text and "Keep the audit log for (months)" in page.text
    refused = await post_form(client, "/audit", "/audit/retention", {"keep_months": "6"})
    assert refused.status_code == 400 and "Keep the audit log for 12 to 120 months" in refused.text
    saved = await post_form(client, "/audit", "/audit/retention", {"keep_months": "30"})
    assert saved.status_code == 303 and saved.headers["location"] == "/audit#retention"
    page = await client.get("/audit")
    assert "now kept for 30 months (it was 24 months)" in page.text
    assert "Set Acme North to keep the audit log for 30 months" in page.text
    await sign_in(client, tree.email("north"))
    response = await client.post("/audit/retention", data={"keep_months": "24"}, headers=await csrf_headers(client))
    assert response.status_code == 403


def test_the_sweep_is_a_unique_cron_job_of_the_worker():
    from portal.jobs.worker import WorkerSettings

    jobs = {job.name: job for job in WorkerSettings.cron_jobs}
    assert jobs["cron:delete_old_audit_entries"].unique


async def test_the_job_sweeps_as_the_domain_does(tree):
    from portal.jobs.audit_retention import delete_old_audit_entries

    partner = await load_actor(tree.managers["partner"]["id"], None)
    await audit.record(partner, "manage.enter", tree.north["id"], datetime.now(UTC) - relativedelta(months=25), {})
    await audit.record(partner, "manage.enter", tree.north["id"], datetime.now(UTC) - relativedelta(months=23), {})
    assert await delete_old_audit_entries({}) == 1
    assert await AuditEntry.count() == 1


async def test_a_long_log_is_counted_up_to_a_bound(client, tree, monkeypatch):
    from portal.domain.audit import log

    monkeypatch.setattr(log, "COUNT_UP_TO", 5)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    for n in range(7):
        await audit.record(partner, "order.assign", tree.north["id"], NOW - timedelta(minutes=n), {"seats": n})
    page = await audit.list_entries(partner, {"company": tree.north["id"]}, None, SECRET)
    assert (page.total, page.total_is_more, len(page.items)) == (5, True, 7)
    page = await audit.list_entries(partner, {"company": tree.north["id"], "what": "access"}, None, SECRET)
    assert (page.total, page.total_is_more) == (0, False)
    await sign_in(client, tree.email("partner"))
    shown = await client.get("/audit", params={"company": tree.north["id"]})
    assert "More than 5 entries" in shown.text
