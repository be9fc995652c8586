"""The same confirmation, applied once. A quote page's confirm button carries a key
drawn with the page (Quoted.key); what it confirms is audited under that key, unique
per company, in the transaction that does it. The same button arriving again (a
double click, a browser resending the form, ten at once) finds the entry, under the
same lock, and answers with what the first one did instead of doing it again or
refusing it as a second change."""

from __future__ import annotations

from typing import Any

from portal.domain.billing.invoices import Quoted
from portal.tables import AuditEntry
from portal.tables.billing import Invoice


def dedupe_key(company_id: int, quoted: Quoted | None) -> str | None:
    if quoted is None or not quoted.key:
        return None
    return f"confirm:{company_id}:{quoted.key}"


async def earlier(company_id: int, quoted: Quoted | None) -> dict[str, Any] | None:
    """What the first arrival of this confirmation did: {"invoice": the invoice it
    issued, as it is now, or None}; None if this is the first."""
    key = dedupe_key(company_id, quoted)
    if key is None:
        return None
    entry = (
        await AuditEntry.select(AuditEntry.detail).where(AuditEntry.dedupe_key == key).output(load_json=True).first()
    )
    if entry is None:
        return None
    invoice_id = entry["detail"].get("invoice")
    invoice = None
    if invoice_id is not None:
        invoice = await Invoice.select().where(Invoice.id == invoice_id).first()
    return {"invoice": invoice}
