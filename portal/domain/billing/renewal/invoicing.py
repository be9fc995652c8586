"""A chunk's renewal invoices, issued in one go: numbers taken from the sellers'
locked profiles as invoices.create_invoice takes one, rows written by COPY."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portal import db
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import money, profiles
from portal.domain.billing.invoices import format_invoice_number, totals
from portal.domain.billing.quotes import term_lines
from portal.domain.billing.renewal import notices, schedule
from portal.tables import Company
from portal.tables.billing import BillingProfile, CatalogueItem, Invoice


@dataclass
class Sellers:
    """The chunk's sellers: profiles (locked for numbering) and catalogues."""

    profiles: dict[int, dict[str, Any]] = field(default_factory=dict)
    items: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)


async def sellers(partner_ids: set[int]) -> Sellers:
    """The sellers' profiles, locked in id order (invoice numbers are taken from
    them), and their catalogues; both written with the defaults if never read."""
    found = Sellers()
    ordered = sorted(partner_ids)
    query = BillingProfile.select().where(BillingProfile.company.is_in(ordered)).order_by(BillingProfile.company)
    rows = await db.for_update(query)
    if len(rows) < len(ordered):
        for partner_id in set(ordered) - {r["company"] for r in rows}:
            await profiles.profile(partner_id)
        rows = await db.for_update(query)
    found.profiles = {r["company"]: r for r in rows}
    for item in await CatalogueItem.select().where(CatalogueItem.partner.is_in(ordered)):
        found.items.setdefault(item["partner"], {})[item["code"]] = item
    for partner_id in ordered:
        if len(found.items.get(partner_id, {})) < len(billing_catalogue.DEFAULT_ITEMS):
            found.items[partner_id] = {i["code"]: i for i in await billing_catalogue.items(partner_id)}
    return found


async def renewal_invoices(subs: list[dict[str, Any]], sellers: Sellers, now: datetime) -> dict[int, dict[str, Any]]:
    """Each subscription's renewal invoice for the term after its current one:
    the one already issued under its key (an earlier attempt, or the customer's
    "Request an invoice"), else a new one with the seller's next number. By
    subscription id."""
    keys = {schedule.renewal_key(s): s for s in subs}
    existing = await Invoice.select().where(Invoice.idempotency_key.is_in(list(keys)))
    found = {keys[i["idempotency_key"]]["id"]: i for i in existing}
    missing = [s for s in subs if s["id"] not in found]
    found.update(await issue_invoices(missing, sellers, now, due_at=lambda s: s["term_end"]))
    return found


async def issue_invoices(
    subs: list[dict[str, Any]], sellers: Sellers, now: datetime, *, due_at: Any
) -> dict[int, dict[str, Any]]:
    """Renewal invoices for `subs` (none issued yet), in one go: numbers taken
    from the locked seller profiles, as invoices.create_invoice takes one. Inside
    the caller's transaction; by subscription id."""
    if not subs:
        return {}
    companies = {
        c["id"]: c
        for c in await Company.select(Company.id, Company.path).where(Company.id.is_in([s["company"] for s in subs]))
    }
    by_seller: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for sub in sorted(subs, key=lambda s: s["id"]):
        by_seller[sub["partner"]].append(sub)
    records, lines_of = [], {}
    for seller_id, sold in sorted(by_seller.items()):
        profile = sellers.profiles[seller_id]
        first = profile["next_invoice_number"]
        await BillingProfile.update({BillingProfile.next_invoice_number: first + len(sold)}).where(
            BillingProfile.id == profile["id"]
        )
        profile["next_invoice_number"] = first + len(sold)
        items = sellers.items[seller_id]
        for number, sub in enumerate(sold, start=first):
            currency = profile["currency"]
            lines = term_lines(
                items,
                items[sub["tier"]],
                schedule.next_count(sub, "extra_users"),
                schedule.next_count(sub, "read_only_users"),
                currency,
            )
            sums = totals(lines, profile["tax_rate_bp"], currency)
            key = schedule.renewal_key(sub)
            lines_of[key] = lines
            records.append(
                (seller_id, sub["company"], companies[sub["company"]]["path"], sub["id"], number, "issued", "renewal",
                 currency, sums.subtotal_cents, sums.tax_rate_bp, sums.tax_cents, sums.total_cents, sub["term_end"],
                 money.term_end(sub["term_end"]), now, now, due_at(sub), key)
            )  # fmt: skip
    # COPY, not Table objects: building 500 Piccolo rows costs more than the database's work.
    await db.copy_rows("invoice", _INVOICE_COLUMNS, records)
    written = await Invoice.select().where(Invoice.idempotency_key.is_in(list(lines_of)))
    await db.copy_rows(
        "invoice_line",
        ("invoice", "position", "code", "description", "quantity", "unit_cents", "amount_cents"),
        [
            (invoice["id"], position, line.code, line.description[:300], line.quantity, line.unit_cents,
             line.amount_cents)
            for invoice in written
            for position, line in enumerate(lines_of[invoice["idempotency_key"]], start=1)
        ],
    )  # fmt: skip
    await notices.audit_many(
        now,
        [
            (
                "invoice.issue",
                i["company"],
                {
                    "invoice": i["id"],
                    "number": format_invoice_number(i["number"]),
                    "kind": "renewal",
                    "total_cents": i["total_cents"],
                    "tax_cents": i["tax_cents"],
                    "currency": i["currency"],
                },
            )
            for i in written
        ],
    )
    return {i["subscription"]: i for i in written}


_INVOICE_COLUMNS = (
    "partner", "company", "company_path", "subscription", "number", "status", "kind", "currency", "subtotal_cents",
    "tax_rate_bp", "tax_cents", "total_cents", "term_start", "term_end", "created_at", "issued_at", "due_at",
    "idempotency_key",
)  # fmt: skip
