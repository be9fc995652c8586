"""Invoices a finance team accepts: the PDF of an invoice, read back as text (pypdf),
carries the seller's name, address and tax id, the due date, the buyer, the lines and
totals, and for Pay by Invoice the seller's payment instructions; a credit note prints
through the same template. Who may download it is who may open the invoice's page.
The seller details are set in the billing settings, with a message per bad field."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader

from portal.domain.access import load_actor
from portal.domain.billing import documents, invoices, seller_details
from portal.domain.billing.quotes import Purchase
from portal.domain.billing.seller_details import SellerDetails
from portal.domain.billing.subscriptions import buy
from portal.domain.clock import utcnow
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.tables import User
from portal.tables.billing import BillingAccount, BillingProfile
from portal.web.app import create_app
from portal.web.billing.pdf import pdf_bytes
from tests.support import PROCESSOR, post_form, sign_in

SELLER = SellerDetails(
    legal_name="Acme North Holdings Ltd",
    address="4 Quay Street\nBristol BS1 4DB\nUnited Kingdom",
    tax_id="GB 123 4567 89",
    payment_instructions="Bank transfer to Acme North Holdings Ltd\n"
    "IBAN GB29 NWBK 6016 1331 9268 19 · BIC NWBKGB2L\n"
    "Checks payable to Acme North Holdings Ltd, 4 Quay Street, Bristol BS1 4DB",
)


def pdf_text(pdf: bytes) -> str:
    """The PDF's text, one space between words, whatever lines the layout broke."""
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


async def actor_of(tree, key):
    actor = await load_actor(tree.managers[key]["id"], None)
    assert actor is not None
    return actor


async def invoiced(tree) -> dict:
    """North Customer buys Pro by invoice from Acme North, which has set its seller details."""
    await seller_details.save_seller_details(await actor_of(tree, "sub"), tree.sub["id"], SELLER, utcnow())
    await BillingAccount.insert(
        BillingAccount(
            company=tree.north["id"],
            billing_name="North Accounts Payable",
            billing_email="ap@north.example",
            address="12 Harbour Road\nPortsmouth PO1 3AA",
            country="GB",
        )
    )
    customer = await actor_of(tree, "north")
    bought = await buy(customer, tree.north["id"], Purchase("pro", 2, 1, (), "invoice"), utcnow(), processor=PROCESSOR)
    return bought["invoice"]


async def test_the_invoice_pdf_prints_every_field_a_finance_team_needs(client, tree):
    invoice = await invoiced(tree)
    await sign_in(client, tree.email("north"))
    answer = await client.get(f"/invoices/{invoice['id']}/pdf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == 'attachment; filename="INV-00001.pdf"'
    text = pdf_text(answer.content)
    lines = await documents.invoice_document(await actor_of(tree, "north"), invoice["id"])
    expected = [
        "Invoice INV-00001",
        "Unpaid",
        # The seller: its legal name, every line of its address, its tax id.
        "Acme North Holdings Ltd",
        "4 Quay Street",
        "Bristol BS1 4DB",
        "United Kingdom",
        "Tax id: GB 123 4567 89",
        # When: issued and due.
        f"Issued {invoice['issued_at']:%d %b %Y}",
        f"Due date {invoice['due_at']:%d %b %Y}",
        # The buyer.
        "Bill to North Accounts Payable North Customer 12 Harbour Road Portsmouth PO1 3AA GB ap@north.example",
        # Lines and totals.
        *(line["description"] for line in lines["lines"]),
        f"Total ${invoice['total_cents'] // 100:,}.{invoice['total_cents'] % 100:02d} USD",
        # Pay by Invoice: how to pay, as the seller wrote it.
        "How to pay",
        f"by {invoice['due_at']:%d %b %Y} and quote INV-00001",
        "Bank transfer to Acme North Holdings Ltd",
        "IBAN GB29 NWBK 6016 1331 9268 19 · BIC NWBKGB2L",
        "Checks payable to Acme North Holdings Ltd, 4 Quay Street, Bristol BS1 4DB",
        "Amounts in USD",
    ]
    missing = [field for field in expected if field not in text]
    assert not missing, f"{missing} not in: {text}"
    assert invoice["due_at"] == invoice["issued_at"] + timedelta(days=30)


async def test_downloads_at_once_are_laid_out_in_threads_each_whole(client, tree):
    invoice = await invoiced(tree)
    await sign_in(client, tree.email("north"))
    answers = await asyncio.gather(*(client.get(f"/invoices/{invoice['id']}/pdf") for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    texts = {pdf_text(a.content) for a in answers}
    assert len(texts) == 1 and "Tax id: GB 123 4567 89" in texts.pop()


async def test_a_paid_invoice_says_when_and_how_and_asks_for_nothing(client, tree):
    invoice = await invoiced(tree)
    await invoices.mark_paid(invoice["id"], method="bank_transfer", reference="TR-889", now=utcnow(), recorded_by=None)
    await sign_in(client, tree.email("sub"))
    text = pdf_text((await client.get(f"/invoices/{invoice['id']}/pdf")).content)
    assert f"Paid {utcnow():%d %b %Y} · Bank transfer · ref. TR-889" in text
    assert "Tax id: GB 123 4567 89" in text and "Acme North Holdings Ltd" in text
    assert "How to pay" not in text and "IBAN" not in text and "Due date" not in text


async def test_a_seller_without_details_prints_its_company_name_and_nothing_invented(client, tree):
    customer = await actor_of(tree, "direct")
    bought = await buy(customer, tree.direct["id"], Purchase("pro", 0, 0, (), "invoice"), utcnow(), processor=PROCESSOR)
    await sign_in(client, tree.email("direct"))
    text = pdf_text((await client.get(f"/invoices/{bought['invoice']['id']}/pdf")).content)
    assert "Acme MSP" in text and "Invoice INV-00001" in text and "Due date" in text
    assert "Tax id" not in text and "How to pay" not in text


async def test_a_credit_note_prints_through_the_same_template():
    env = create_app().template_engine.engine  # type: ignore[union-attr]
    note = documents.document(
        title="Credit note",
        number="CN-000001",
        refers_to="INV-00007",
        reason="Two seats bought twice",
        status="issued",
        status_words="Credited to the card",
        issued_at=datetime(2026, 3, 2, 10, tzinfo=UTC),
        currency="EUR",
        lines=[{"description": "Refund: 2 standard users", "quantity": 2, "unit_cents": 36000, "amount_cents": 72000}],
        subtotal_cents=72000,
        tax_rate_bp=2000,
        tax_cents=14400,
        total_cents=86400,
        seller_name="Acme MSP",
        seller=SELLER,
        buyer={"name": "Direct Customer", "billing_name": "", "address": "1 Main St", "country": "DE"},
    )
    text = pdf_text(await pdf_bytes(env, note))
    for field in (
        "Credit note CN-000001 Credited to the card",
        "Credits invoice INV-00007",
        "Reason Two seats bought twice",
        "Issued 02 Mar 2026",
        "Acme North Holdings Ltd",
        "Tax id: GB 123 4567 89",
        "Direct Customer 1 Main St DE",
        "Refund: 2 standard users",
        "Tax (20 %) €144.00 EUR",
        "Total €864.00 EUR",
        "credit note CN-000001",
    ):
        assert field in text, f"{field!r} not in: {text}"
    # Not an invoice to pay: no due date, no payment instructions.
    assert "How to pay" not in text and "Due date" not in text and "Unpaid" not in text


async def test_the_pdf_is_for_whoever_may_open_the_invoice(client, tree):
    invoice = await invoiced(tree)
    url = f"/invoices/{invoice['id']}/pdf"
    signed_out = await client.get(url)
    assert signed_out.status_code in (302, 303) and signed_out.headers["location"].startswith("/login")
    for who, status in (("north", 200), ("sub", 200), ("partner", 200), ("direct", 404), ("other", 404)):
        client.cookies.clear()
        await sign_in(client, tree.email(who))
        answer = await client.get(url)
        assert answer.status_code == status, who
        if status == 404:
            assert "application/pdf" not in answer.headers["content-type"]
            assert "Acme North Holdings" not in answer.text
    client.cookies.clear()
    await sign_in(client, tree.email("north"))
    assert (await client.get(f"/invoices/{invoice['id'] + 1000}/pdf")).status_code == 404


def test_seller_details_are_cleaned_or_refused_field_by_field():
    cleaned = seller_details.clean(
        SellerDetails("  Acme   Ltd ", "\n 1  Road \r\n\n Town \n", " DE 123/45-6. ", "Pay to\n\n IBAN  X ")
    )
    assert cleaned == SellerDetails("Acme Ltd", "1 Road\nTown", "DE 123/45-6.", "Pay to\nIBAN X")
    with pytest.raises(ValidationFailed) as refused:
        seller_details.clean(SellerDetails("x" * 201, "\n".join("line" for _ in range(7)), "<b>", "y\n" * 13))
    assert refused.value.errors == {
        "legal_name": "Use at most 200 characters for the name (201 now).",
        "address": "Write the address on at most 6 lines (7 now).",
        "tax_id": "A tax id has letters, digits, spaces and . - / only, as it is printed on your registration "
        "(for example GB123456789 or 12-3456789).",
        "payment_instructions": "Write the payment instructions on at most 12 lines (13 now).",
    }
    with pytest.raises(ValidationFailed) as long:
        seller_details.clean(SellerDetails(payment_instructions="z" * 1001, address="a" * 501, tax_id="9" * 51))
    assert set(long.value.errors) == {"payment_instructions", "address", "tax_id"}


async def test_partner_staff_set_the_seller_details_in_the_billing_settings(client, tree):
    await sign_in(client, tree.email("partner"))
    page = await client.get("/billing/settings")
    assert "Seller details on invoices" in page.text and "Payment instructions for Pay by Invoice" in page.text
    form = {
        "legal_name": "Acme MSP Inc.",
        "address": "1 Main Street\r\nSpringfield, IL 62701",
        "tax_id": "12-3456789",
        "payment_instructions": "ACH: routing 011000015, account 1234567\r\nChecks to PO Box 9, Springfield",
    }
    saved = await post_form(client, "/billing/settings", "/billing/settings/seller", form)
    assert saved.status_code in (302, 303)
    after = await client.get("/billing/settings")
    assert "Seller details saved: invoices and credit notes downloaded from now on show Acme MSP Inc." in after.text
    assert "tax id 12-3456789" in after.text
    row = await BillingProfile.select().where(BillingProfile.company == tree.partner["id"]).first()
    assert (row["legal_name"], row["address"], row["tax_id"], row["payment_instructions"]) == (
        "Acme MSP Inc.",
        "1 Main Street\nSpringfield, IL 62701",
        "12-3456789",
        "ACH: routing 011000015, account 1234567\nChecks to PO Box 9, Springfield",
    )

    refused = await post_form(
        client, "/billing/settings", "/billing/settings/seller", {**form, "tax_id": "12=3456789", "legal_name": "New"}
    )
    assert refused.status_code == 400
    assert "A tax id has letters, digits, spaces and . - / only" in refused.text
    assert 'value="12=3456789"' in refused.text and 'value="New"' in refused.text  # nothing typed is lost
    assert 'aria-describedby="tax_id-error"' in refused.text
    row = await BillingProfile.select().where(BillingProfile.company == tree.partner["id"]).first()
    assert row["legal_name"] == "Acme MSP Inc."  # nothing half-written


async def test_customer_and_read_only_managers_cannot_set_seller_details(client, tree):
    await sign_in(client, tree.email("north"))
    answer = await post_form(
        client, f"/companies/{tree.north['id']}/billing", "/billing/settings/seller", {"tax_id": "X1"}
    )
    assert answer.status_code == 403
    await User.update({User.role: "read_only"}).where(User.id == tree.managers["partner"]["id"])
    read_only = await actor_of(tree, "partner")
    assert read_only.read_only
    with pytest.raises(PermissionDenied):
        await seller_details.save_seller_details(read_only, tree.partner["id"], SellerDetails(tax_id="X1"), utcnow())
    assert (await seller_details.seller_details(tree.partner["id"])).tax_id == ""


async def test_a_refund_s_credit_note_downloads_as_a_pdf_for_its_buyer_and_seller_only(client, tree):
    from portal.domain.billing import credit_notes, refunds, settlement

    invoice = await invoiced(tree)
    sub = await actor_of(tree, "sub")
    await settlement.record_payment(sub, invoice["id"], method="check", reference="CHK-1", now=utcnow())
    done = await refunds.refund(
        sub, invoice["id"], 12_34, "Two seats never used", "cn-pdf", utcnow(), processor=PROCESSOR
    )
    note = await credit_notes.get_credit_note(sub, done["credit_note"]["id"])
    url = f"/credit-notes/{note['id']}/pdf"
    await sign_in(client, tree.email("north"))
    answer = await client.get(url)
    assert answer.headers["content-type"].startswith("application/pdf")
    text = pdf_text(answer.content)
    assert f"Credit note {note['label']}" in text and invoices.format_invoice_number(invoice["number"]) in text
    assert "Two seats never used" in text and "$12.34" in text and "Acme North Holdings Ltd" in text
    assert "How to pay" not in text
    page = await client.get(f"/credit-notes/{note['id']}")
    assert f'href="{url}"' in page.text
    for who, status in (("sub", 200), ("direct", 404), ("other", 404)):
        client.cookies.clear()
        await sign_in(client, tree.email(who))
        assert (await client.get(url)).status_code == status, who
