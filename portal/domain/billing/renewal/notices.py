"""Renewals' e-mails to the customers' managers and their audit entries, many at
once (outbox dedupe keys make each e-mail once)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from portal import db
from portal.domain.billing import money, payments
from portal.domain.billing.invoices import format_invoice_number
from portal.domain.billing.renewal import schedule
from portal.domain.billing.renewal.chunk import Renewal
from portal.domain.emails.queue import queue_kind
from portal.tables import BILLING_ROLES, Company, User


async def managers_by_company(company_ids: set[int]) -> dict[int, list[str]]:
    """Each company's active managers' addresses (outbox.managers_of, for many)."""
    found: dict[int, list[str]] = defaultdict(list)
    if company_ids:
        rows = (
            await User.select(User.company, User.email)
            .where(
                User.company.is_in(sorted(company_ids)) & User.role.is_in(list(BILLING_ROLES)) & (User.active == True)  # noqa: E712
            )
            .order_by(User.id)
        )
        for row in rows:
            found[row["company"]].append(row["email"])
    return found


async def company_names(company_ids: set[int]) -> dict[int, str]:
    if not company_ids:
        return {}
    return {
        c["id"]: c["name"]
        for c in await Company.select(Company.id, Company.name).where(Company.id.is_in(sorted(company_ids)))
    }


async def renewal_mails_and_audit(decided: list[Renewal], now: datetime) -> None:
    companies = {r.sub["company"] for r in decided}
    managers = await managers_by_company(companies)
    names = await company_names(companies | {r.sub["partner"] for r in decided})
    entries = []
    for r in decided:
        company, invoice = r.sub["company"], r.invoice
        number = f"{format_invoice_number(invoice['number'])} from {names[r.sub['partner']]}"
        amount = money.format_money(invoice["total_cents"], invoice["currency"])
        money_detail = {
            "subscription": r.sub["id"],
            "invoice": invoice["id"],
            "number": format_invoice_number(invoice["number"]),
            "attempt": r.attempt,
            "amount_cents": invoice["total_cents"],
            "currency": invoice["currency"],
        }
        if r.outcome == "paid":
            card = f"by the card ending {r.card_last4}" if r.card_last4 else "as recorded"
            await queue_kind(
                "subscription_renewed",
                company,
                managers[company],
                {
                    "company_id": company,
                    "company_name": names[company],
                    "tier_name": r.tier_name,
                    "seats": r.seats,
                    "old_end": r.old_end,
                    "new_end": r.new_end,
                    "invoice": number,
                    "amount": amount,
                    "paid_by": card,
                },
                now,
                dedupe=f"subscription_renewed:{r.sub['id']}:{r.new_end.astimezone(UTC).isoformat()}",
            )
            if r.charge is not None and r.charge["status"] == "pending":
                entries.append(("invoice.charged", company, {**money_detail, "reference": r.reference}))
                entries.append(("invoice.paid", company, {**money_detail, "method": "card", "reference": r.reference}))
            continue
        retry = schedule.retry_at(r.old_end, r.attempt)
        if r.charge is not None and r.charge["status"] == "pending":
            entries.append(("invoice.charge_declined", company, {**money_detail, "decline_reason": r.reason}))
        if retry is not None:
            # Needing authentication, the bank wants the cardholder: a link to
            # confirm the payment (the retry asks again meanwhile).
            await queue_kind(
                "renewal_charge_failed",
                company,
                managers[company],
                {
                    "company_id": company,
                    "company_name": names[company],
                    "tier_name": r.tier_name,
                    "reason": r.reason,
                    "invoice": number,
                    "invoice_id": invoice["id"],
                    "amount": amount,
                    "confirm": r.reason == payments.NEEDS_AUTHENTICATION,
                    "retry_on": retry,
                    "ends_on": r.old_end if r.old_end > now else None,
                },
                now,
                dedupe=f"renewal_charge_failed:{invoice['id']}:{r.attempt}",
            )
        else:
            await lapsed_mail(r.sub, names[company], managers[company], now, reason=r.reason)
            entries.append(("subscription.lapse", company, {**money_detail, "term_end": r.old_end.isoformat()}))
    await audit_many(now, entries)


async def lapsed_mail(
    sub: dict[str, Any], company_name: str, recipients: list[str], now: datetime, reason: str | None
) -> None:
    await queue_kind(
        "subscription_lapsed",
        sub["company"],
        recipients,
        {"company_id": sub["company"], "company_name": company_name, "reason": reason, "term_end": sub["term_end"]},
        now,
        dedupe=f"subscription_lapsed:{sub['id']}:{sub['term_end'].astimezone(UTC).isoformat()}",
    )


async def audit_many(now: datetime, entries: list[tuple[str, int, dict[str, Any]]]) -> None:
    """audit.record for many: by the system (no actor), amounts in cents with their currency."""
    await db.copy_rows(
        "audit_entry",
        ("at", "company", "action", "detail"),
        [(now, company, action, json.dumps(detail)) for action, company, detail in entries],
    )


async def invoice_mails(
    invoices: list[dict[str, Any]], subs: dict[int, dict[str, Any]], now: datetime, *, reminder: bool
) -> int:
    """Returns how many e-mails were queued (a reminder already sent queues none)."""
    companies = {i["company"] for i in invoices}
    managers = await managers_by_company(companies)
    names = await company_names(companies | {i["partner"] for i in invoices})
    queued = 0
    for invoice in invoices:
        sub, company = subs[invoice["subscription"]], invoice["company"]
        number = f"{format_invoice_number(invoice['number'])} from {names[invoice['partner']]}"
        amount = money.format_money(invoice["total_cents"], invoice["currency"])
        kind = "renewal_invoice_reminder" if reminder else "renewal_invoice"
        queued += await queue_kind(
            kind,
            company,
            managers[company],
            {
                "company_name": names[company],
                "invoice_number": format_invoice_number(invoice["number"]),
                "invoice": number,
                "invoice_id": invoice["id"],
                "amount": amount,
                "term_end": sub["term_end"],
            },
            now,
            dedupe=f"{kind}:{invoice['id']}",
        )
    return queued
