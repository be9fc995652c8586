"""Settings → E-mails and Brand: a partner manager edits a kind's words with its
fields listed and a preview, is refused with the line at fault, sends a test,
resets; uploads a logo and sets a colour, which its customers' pages show and
another partner's customers' do not. Customer managers have neither page."""

from __future__ import annotations

from portal.tables import AuditEntry, OutboxEmail
from portal.tables.branding import PartnerBrand, PartnerEmailTemplate
from tests.support import csrf_of, post_form, sign_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
EDITOR = "/settings/emails/order_declined"


async def test_the_e_mails_page_lists_the_kinds_and_the_editor_offers_only_the_kind_s_fields(client, tree):
    await sign_in(client, tree.email("partner"))
    listing = await client.get("/settings/emails")
    assert listing.status_code == 200 and 'href="/settings/emails/order_declined"' in listing.text
    assert "/settings/emails/weekly_digest" not in listing.text  # the digest's tables are the portal's own
    page = await client.get(EDITOR)
    assert page.status_code == 200
    fields = page.text.split('data-testid="field-list"')[1].split("</ul>")[0]
    assert [f for f in ("quantity", "declined_by", "reason", "sender_name") if f"<code>{f}</code>" in fields] == [
        "quantity",
        "declined_by",
        "reason",
        "sender_name",
    ]
    assert "<code>company_name</code>" not in fields
    assert "Your order of {{ quantity }} licenses was declined" in page.text.replace("&#34;", '"')
    assert 'data-testid="preview-subject">Your order of 25 licenses was declined' in page.text
    assert (await client.get("/settings/emails/no_such_kind")).status_code == 404
    assert (await client.get("/settings/emails/weekly_digest")).status_code == 404


async def test_the_preview_follows_what_is_typed_as_a_fragment_and_refuses_with_the_line(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get(EDITOR)
    headers = {"HX-Request": "true", "HX-Target": "email-preview", "x-csrftoken": csrf_of(page.text)}
    shown = await client.post(
        f"{EDITOR}/preview", data={"subject": "No to {{ quantity }}", "body": "Because {{ reason }}"}, headers=headers
    )
    assert shown.status_code == 200 and "<html" not in shown.text
    assert "No to 25" in shown.text and "Because The budget moves to next quarter." in shown.text
    refused = await client.post(
        f"{EDITOR}/preview", data={"subject": "No", "body": "one\n{{ ''.__class__ }}"}, headers=headers
    )
    assert "Line 2:" in refused.text and 'data-testid="preview-refused"' in refused.text
    assert await PartnerEmailTemplate.count() == 0


async def test_saving_stores_the_words_says_so_and_a_broken_one_is_refused_on_the_form(client, tree):
    await sign_in(client, tree.email("partner"))
    refused = await post_form(client, EDITOR, EDITOR, {"subject": "No", "body": "Hi\n\n{{ password }}"})
    assert refused.status_code == 400
    assert "Line 3: there is no field &#39;password&#39; in this e-mail" in refused.text
    assert "{{ password }}" in refused.text  # what was typed stays
    assert await PartnerEmailTemplate.count() == 0
    saved = await post_form(client, EDITOR, EDITOR, {"subject": "No to {{ quantity }}", "body": "Sorry: {{ reason }}"})
    assert saved.status_code == 303
    page = await client.get(EDITOR)
    assert "now goes in your words to the customers of Acme MSP" in page.text and "In your words" in page.text
    row = await PartnerEmailTemplate.select().first()
    assert (row["company"], row["kind"], row["body"]) == (tree.partner["id"], "order_declined", "Sorry: {{ reason }}")
    listing = await client.get("/settings/emails")
    assert "Yours" in listing.text


async def test_send_me_a_test_queues_the_typed_words_to_the_manager_and_saves_nothing(client, tree):
    await sign_in(client, tree.email("partner"))
    answer = await post_form(client, EDITOR, f"{EDITOR}/test", {"subject": "Test {{ quantity }}", "body": "Body"})
    assert answer.status_code == 200 and f"queued to {tree.email('partner')}" in answer.text
    rows = await OutboxEmail.select(OutboxEmail.to_email, OutboxEmail.subject)
    assert rows == [{"to_email": tree.email("partner"), "subject": "[Test] Test 25"}]
    assert await PartnerEmailTemplate.count() == 0
    broken = await post_form(client, EDITOR, f"{EDITOR}/test", {"subject": "x", "body": "{% if %}"})
    assert broken.status_code == 400 and await OutboxEmail.count() == 1


async def test_reset_to_default_says_what_it_will_do_and_puts_back_the_standard_words(client, tree):
    await sign_in(client, tree.email("partner"))
    await post_form(client, EDITOR, EDITOR, {"subject": "Mine", "body": "Mine"})
    page = await client.get(EDITOR)
    assert "Reset to default puts back the standard words for your customers" in page.text
    answer = await client.post(f"{EDITOR}/reset", data={"_csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    after = await client.get(EDITOR)
    assert "goes in the standard words again" in after.text and "Reset to default" not in after.text
    assert await PartnerEmailTemplate.count() == 0
    assert await AuditEntry.count().where(AuditEntry.action == "branding.template_reset") == 1


async def test_a_customer_manager_has_neither_page_and_changes_nothing(client, tree):
    await sign_in(client, tree.email("north"))
    for path in ("/settings/emails", EDITOR, "/settings/brand"):
        assert (await client.get(path)).status_code == 403, path
    token = csrf_of((await client.get("/notifications")).text)
    for path in (EDITOR, f"{EDITOR}/test", f"{EDITOR}/reset", f"{EDITOR}/preview"):
        answer = await client.post(path, data={"_csrf_token": token, "subject": "x", "body": "y"})
        assert answer.status_code == 403, path
    assert await PartnerEmailTemplate.count() == 0 and await OutboxEmail.count() == 0


async def _upload(client, colour: str, logo: bytes | None, name: str = "logo.png", media: str = "image/png"):
    page = await client.get("/settings/brand")
    files = {"logo": (name, logo, media)} if logo is not None else {"logo": ("", b"", "application/octet-stream")}
    return await client.post("/settings/brand", data={"_csrf_token": csrf_of(page.text), "colour": colour}, files=files)


async def test_the_brand_shows_on_its_customers_pages_and_not_on_another_partner_s(client, tree):
    await sign_in(client, tree.email("partner"))
    saved = await _upload(client, "#0A7A55", PNG)
    assert saved.status_code == 303
    page = await client.get("/settings/brand")
    assert "Saved: the color is now #0a7a55 and the logo is new" in page.text
    digest = (await PartnerBrand.select(PartnerBrand.logo_digest).first())["logo_digest"]
    logo = await client.get(f"/brand/logo/{digest}")
    assert logo.status_code == 200 and logo.content == PNG and logo.headers["content-type"] == "image/png"
    css = await client.get("/brand/colour/0a7a55")
    assert css.text == ":root { --partner-color: #0a7a55; }\n" and css.headers["content-type"].startswith("text/css")
    assert (await client.get("/brand/colour/0a7a55;x")).status_code == 404
    assert (await client.get(f"/brand/logo/{'f' * 64}")).status_code == 404

    client.cookies.clear()
    await sign_in(client, tree.email("north"))  # under Acme's sub-partner, which set no brand
    customer = await client.get(f"/companies/{tree.north['id']}")
    assert f'src="/brand/logo/{digest}"' in customer.text and 'href="/brand/colour/0a7a55"' in customer.text
    assert 'class="topbar branded"' in customer.text
    client.cookies.clear()
    await sign_in(client, tree.email("other_customer"))
    other = await client.get(f"/companies/{tree.other_customer['id']}")
    assert "/brand/logo/" not in other.text and "/brand/colour/" not in other.text


async def test_an_svg_or_a_bad_colour_is_refused_on_the_form_and_nothing_is_saved(client, tree):
    await sign_in(client, tree.email("partner"))
    svg = await _upload(client, "#0a7a55", SVG, "logo.png", "image/png")  # named and typed as a PNG: the bytes decide
    assert svg.status_code == 400 and "Use a PNG or JPEG image; SVG and other files are not accepted." in svg.text
    colour = await _upload(client, "red; background: url(x)", None)
    assert colour.status_code == 400 and "# and six hexadecimal digits" in colour.text
    big = await _upload(client, "", PNG + b"\x00" * 200_000)
    assert big.status_code == 400 and "use one of at most 200,000" in big.text
    assert (
        await PartnerBrand.count() == 0
        and await AuditEntry.count().where(AuditEntry.action == "branding.brand_save") == 0
    )
