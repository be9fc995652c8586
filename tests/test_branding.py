"""A partner's words and brand in its e-mails: the sandbox refuses reaching into
a value (`''.__class__`), unknown fields, calls, loops and huge sums, naming
the line; the nearest partner's words win at delivery and never reach another
partner's customers; a stored template that fails is not sent (the standard
words go, and it is logged); the logo and colour are checked and shown."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from portal.domain.access import load_actor
from portal.domain.branding import brand, sandbox, templates
from portal.domain.emails.content import render_rows
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import ValidationFailed
from portal.tables import AuditEntry, OutboxEmail
from portal.tables.branding import PartnerEmailTemplate
from tests.support import BASE_URL

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
DECLINED = {"quantity": 25, "declined_by": "Dana Reyes", "reason": "Budget moves to May"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def refusal(subject: str, body: str, kind: str = "order_declined") -> sandbox.Refusal:
    with pytest.raises(sandbox.TemplateRefused) as refused:
        templates.rendered(templates.editable_kind(kind), subject, body, "Acme", BASE_URL)
    return refused.value.refusal


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ reason.__class__ }}",
        "{{ reason['__class__'] }}",
        "{{ reason.upper() }}",
        "{{ quantity|attr('__class__') }}",
    ],
)
def test_the_sandbox_refuses_reaching_into_a_value_and_names_the_line(body):
    said = refusal("Order declined", f"Hello\n\n{body}")
    assert said.field == "body" and said.line == 3


@pytest.mark.parametrize("name", ["password", "self", "range", "lipsum", "cycler", "config", "b"])
def test_the_sandbox_refuses_a_field_the_kind_does_not_declare(name):
    said = refusal("Order declined", f"{{{{ {name} }}}}")
    assert said.line == 1 and f"no field '{name}'" in said.message


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("ok\n{% if quantity %}", 2, "endif"),
        ("{{ quantity ** 99 }}", 1, "powers"),
        ("{% for c in reason %}{{ c }}{% endfor %}", 1, "loops"),
        ("one\ntwo\n{{ reason * 1000000 }}", 3, "multiplying numbers"),
        ("{{ quantity|nope }}", 1, "No filter named 'nope'"),
        ("{% include 'expiry_reminder.txt' %}", 1, ""),
    ],
)
def test_a_broken_template_is_refused_with_the_line_at_fault(body, line, words):
    said = refusal("Order declined", body)
    assert said.line == line and words in said.message


def test_the_subject_is_checked_as_the_text_is():
    said = refusal("Declined {{ ''.__class__ }}", "Fine")
    assert said.field == "subject" and str(said).startswith("Line 1:")


def test_every_kind_s_standard_words_pass_the_sandbox_as_a_starting_point():
    for kind in templates.editable_kinds():
        subject, text = templates.rendered(kind, *templates.built_in(kind), "Acme", BASE_URL)
        assert subject and text, kind.name


async def test_saving_refuses_a_broken_template_and_stores_nothing(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    with pytest.raises(ValidationFailed) as refused:
        await templates.save(partner, "order_declined", subject="Declined", body="Hi\n{{ ''.__class__ }}", now=NOW)
    assert refused.value.errors == {
        "body": "Line 2: a field is used as it is: nothing can be reached from it with . or [ ]"
    }
    assert await PartnerEmailTemplate.count() == 0
    assert await AuditEntry.count() == 0


async def _declined_to(company_id: int, to: str) -> dict:
    await queue_kind("order_declined", company_id, [to], DECLINED, NOW, f"declined:{company_id}:{to}")
    rows = await OutboxEmail.select().where(OutboxEmail.to_email == to)
    return (await render_rows(rows, BASE_URL, NOW))[rows[0]["id"]]


async def test_a_partner_s_words_go_to_its_customers_and_never_to_another_partner_s(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    await templates.save(
        partner,
        "order_declined",
        subject="Acme says no to {{ quantity }} licenses",
        body="Sorry from {{ sender_name }}: {{ reason|upper }}",
        now=NOW,
    )
    own = await _declined_to(tree.north["id"], "a@north.example")  # under Acme's sub-partner
    assert own.subject == "Acme says no to 25 licenses"
    assert own.text == "Sorry from Acme North: BUDGET MOVES TO MAY"  # the sender: the nearest partner
    assert "BUDGET MOVES TO MAY" in own.html
    other = await _declined_to(tree.other_customer["id"], "b@other.example")
    assert other.subject == "Your order of 25 licenses was declined"
    assert "Acme" not in other.text and "BUDGET" not in other.text
    assert await AuditEntry.count().where(AuditEntry.action == "branding.template_save") == 1


async def test_the_nearest_partner_s_words_win_and_reset_gives_back_the_ones_above(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    sub = await load_actor(tree.managers["sub"]["id"], None)
    await templates.save(partner, "order_declined", subject="From Acme", body="Acme: {{ reason }}", now=NOW)
    await templates.save(sub, "order_declined", subject="From North", body="North: {{ reason }}", now=NOW)
    assert (await _declined_to(tree.north["id"], "1@north.example")).subject == "From North"
    assert (await _declined_to(tree.direct["id"], "1@direct.example")).subject == "From Acme"
    assert (await templates.wording(sub, "order_declined")).own
    assert await templates.reset(sub, "order_declined", NOW)
    assert not await templates.reset(sub, "order_declined", NOW)
    assert (await _declined_to(tree.north["id"], "2@north.example")).subject == "From Acme"
    inherited = await templates.wording(sub, "order_declined")
    assert not inherited.own and inherited.inherited_from == tree.partner["id"]


async def test_a_stored_template_that_fails_is_never_sent_the_standard_words_go_and_it_is_logged(tree, caplog):
    # Written past the check (a row from before a field was renamed, say): it must not go.
    await PartnerEmailTemplate.insert(
        PartnerEmailTemplate(
            company=tree.partner["id"], kind="order_declined", subject="Bad", body="{{ ''.__class__.__mro__ }}"
        )
    )
    with caplog.at_level(logging.WARNING, logger="portal.domain.branding.delivery"):
        content = await _declined_to(tree.direct["id"], "c@direct.example")
    assert content.subject == "Your order of 25 licenses was declined"
    assert "Dana Reyes declined the order of 25 licenses" in content.text
    assert "class" not in content.text
    assert any("refused at delivery" in record.message for record in caplog.records)


async def test_a_reminder_in_a_partner_s_words_reads_its_batch_s_facts_as_fields(tree):
    from portal.domain.branding.delivery import Branding, Override
    from portal.domain.emails.content import _batch_content
    from portal.domain.emails.kinds import get

    batch = {
        "company": tree.direct["id"],
        "company_name": "Direct Customer",
        "product_name": "Security Awareness Training",
        "seats": 10,
        "losing": 4,
        "ends_at": datetime(2027, 3, 4, 9, 0, tzinfo=UTC),
        "time_zone": "UTC",
        "renewed": False,
    }
    words = Branding(
        words={tree.direct["id"]: {"expiry_reminder": Override(1, "{{ seats }} end", "{{ losing }} lose access")}}
    )
    content = _batch_content(get("expiry_reminder"), {"days": 3}, batch, "Acme MSP", None, BASE_URL, None, words)
    assert (content.subject, content.text) == ("10 end", "4 lose access")


def test_a_logo_is_a_png_or_jpeg_by_its_own_bytes_and_small():
    assert brand.logo_type(PNG) == "image/png" and brand.logo_type(JPEG) == "image/jpeg"
    for refused in (SVG, b"GIF89a" + b"\x00" * 10, b"<html>"):
        with pytest.raises(ValidationFailed, match="PNG or JPEG"):
            brand.logo_type(refused)
    with pytest.raises(ValidationFailed, match="at most 200,000"):
        brand.logo_type(PNG + b"\x00" * brand.LOGO_LIMIT)


@pytest.mark.parametrize("typed", ["red", "#12345", "#1234567", "#12345g", "1f6feb", "#1f6feb;x:1", "url(x)"])
def test_a_colour_is_hash_and_six_hex_digits_only(typed):
    with pytest.raises(ValidationFailed):
        brand.checked_colour(typed)


async def test_the_brand_is_in_its_partner_s_e_mails_and_not_in_another_s(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    _, saved = await brand.save(partner, colour="#1F6FEB", logo=PNG, remove_logo=False, now=NOW)
    assert saved.colour == "#1f6feb" and saved.logo_path
    own = await _declined_to(tree.north["id"], "d@north.example")
    assert "border-top:6px solid #1f6feb" in own.html and saved.logo_path in own.html
    other = await _declined_to(tree.other_customer["id"], "e@other.example")
    assert "#1f6feb" not in other.html and "/brand/logo/" not in other.html
    assert await brand.logo(saved.logo_digest or "") == (PNG, "image/png")
    assert await AuditEntry.count().where(AuditEntry.action == "branding.brand_save") == 1


async def test_a_test_e_mail_goes_to_the_manager_in_the_words_typed(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    address = await templates.send_test(
        partner, "order_declined", subject="Hi {{ quantity }}", body="Because {{ reason }}", now=NOW
    )
    rows = await OutboxEmail.select()
    assert address == tree.email("partner") and [r["to_email"] for r in rows] == [address]
    content = (await render_rows(rows, BASE_URL, NOW))[rows[0]["id"]]
    assert content.subject == "[Test] Hi 25" and content.text == "Because The budget moves to next quarter."
    assert await PartnerEmailTemplate.count() == 0  # a test saves nothing
    with pytest.raises(ValidationFailed):
        await templates.send_test(partner, "order_declined", subject="x", body="{{ nope }}", now=NOW)
