"""Renewals' e-mails to the customers' managers and their audit entries, many at
once (outbox dedupe keys make each e-mail once)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime

from portal import db
from portal.domain import outbox
from portal.domain.billing import money, payments
from portal.domain.billing.invoices import format_invoice_number
from portal.domain.billing.quotes import format_day
from portal.domain.billing.renewal import schedule
from portal.domain.billing.renewal.chunk import Renewal
from portal.tables import Company, User


async def managers_by_company(company_ids: set[int]) -> dict[int, list[str]]:
    """Each company's active managers' addresses (outbox.managers_of, for many)."""
    found: dict[int, list[str]] = defaultdict(list)
    if company_ids:
        rows = (
            await User.select(User.company, User.email)
            .where(
                User.company.is_in(sorted(company_ids)) & (User.role == "manager") & (User.active == True)  # noqa: E712
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
        billing = outbox.link(f"/companies/{company}/billing")
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
            await outbox.queue_email(
                "subscription_renewed",
                company,
                managers[company],
                f"Your {r.tier_name} license is renewed until {format_day(r.new_end)}",
                f"The {r.tier_name} annual license of {names[company]} renewed on its date, for {r.seats} standard "
                f"users, from {format_day(r.old_end)} to {format_day(r.new_end)}.\n"
                f"Invoice {number}: {amount}, paid {card}.\n"
                "Everyone who held a seat keeps it; there is nothing to do.\n\n"
                f"Billing: {billing}",
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
        if retry is not None and r.reason == payments.NEEDS_AUTHENTICATION:
            # The bank wants the cardholder: a link to confirm the payment (the retry asks again meanwhile).
            confirm = outbox.link(f"/invoices/{invoice['id']}/confirm-payment")
            await outbox.queue_email(
                "renewal_charge_failed",
                company,
                managers[company],
                f"Confirm the payment of the {r.tier_name} license renewal",
                f"The renewal of the {r.tier_name} annual license of {names[company]} needs you: {r.reason}\n"
                f"Invoice {number}: {amount}.\n"
                f"Confirm the payment here: {confirm}\n"
                + (f"The licenses end on {format_day(r.old_end)} unless it is paid.\n" if r.old_end > now else "")
                + f"\nBilling: {billing}",
                now,
                dedupe=f"renewal_charge_failed:{invoice['id']}:{r.attempt}",
            )
        elif retry is not None:
            await outbox.queue_email(
                "renewal_charge_failed",
                company,
                managers[company],
                f"We could not charge your card for the {r.tier_name} license renewal",
                f"The renewal of the {r.tier_name} annual license of {names[company]} could not be paid: {r.reason}\n"
                f"Invoice {number}: {amount}.\n"
                f"We will try the card again on {format_day(retry)}. To avoid a lapse, check the card on the "
                "billing account before then.\n"
                + (f"The licenses end on {format_day(r.old_end)} unless it is paid.\n" if r.old_end > now else "")
                + f"\nBilling: {billing}",
                now,
                dedupe=f"renewal_charge_failed:{invoice['id']}:{r.attempt}",
            )
        else:
            await lapsed_mail(r.sub, names[company], managers[company], now, reason=r.reason)
            entries.append(("subscription.lapse", company, {**money_detail, "term_end": r.old_end.isoformat()}))
    await audit_many(now, entries)


async def lapsed_mail(sub: dict, company_name: str, recipients: list[str], now: datetime, reason: str | None) -> None:
    billing = outbox.link(f"/companies/{sub['company']}/billing")
    why = f"The renewal could not be paid: {reason}\n" if reason else "The renewal invoice was not paid.\n"
    await outbox.queue_email(
        "subscription_lapsed",
        sub["company"],
        recipients,
        f"The license subscription of {company_name} has lapsed",
        f"{why}The licenses of {company_name} ended on {format_day(sub['term_end'])}.\n"
        "Buy a subscription again under Billing to give everyone their seats back.\n\n"
        f"Billing: {billing}",
        now,
        dedupe=f"subscription_lapsed:{sub['id']}:{sub['term_end'].astimezone(UTC).isoformat()}",
    )


async def audit_many(now: datetime, entries: list[tuple[str, int, dict]]) -> None:
    """audit.record for many: by the system (no actor), amounts in cents with their currency."""
    await db.copy_rows(
        "audit_entry",
        ("at", "company", "action", "detail"),
        [(now, company, action, json.dumps(detail)) for action, company, detail in entries],
    )


async def invoice_mails(invoices: list[dict], subs: dict[int, dict], now: datetime, *, reminder: bool) -> int:
    """Returns how many e-mails were queued (a reminder already sent queues none)."""
    companies = {i["company"] for i in invoices}
    managers = await managers_by_company(companies)
    names = await company_names(companies | {i["partner"] for i in invoices})
    queued = 0
    for invoice in invoices:
        sub, company = subs[invoice["subscription"]], invoice["company"]
        number = f"{format_invoice_number(invoice['number'])} from {names[invoice['partner']]}"
        amount = money.format_money(invoice["total_cents"], invoice["currency"])
        ends = format_day(sub["term_end"])
        pay = (
            f"Pay it by {ends} (card, bank transfer, money order or check) and the new term starts where this one "
            "ends, with no gap."
        )
        view = outbox.link(f"/invoices/{invoice['id']}")
        if reminder:
            queued += await outbox.queue_email(
                "renewal_invoice_reminder",
                company,
                managers[company],
                f"Reminder: the licenses of {names[company]} end on {ends}; "
                f"invoice {format_invoice_number(invoice['number'])} is unpaid",
                f"The renewal invoice {number} ({amount}) is not paid yet, and the licenses of {names[company]} "
                f"end on {ends}.\n{pay}\n\nInvoice: {view}",
                now,
                dedupe=f"renewal_invoice_reminder:{invoice['id']}",
            )
        else:
            queued += await outbox.queue_email(
                "renewal_invoice",
                company,
                managers[company],
                f"Renewal invoice {format_invoice_number(invoice['number'])} for the licenses of {names[company]}",
                f"The annual license of {names[company]} ends on {ends}. The renewal invoice {number} is issued: "
                f"{amount}.\n{pay}\n\nInvoice: {view}",
                now,
                dedupe=f"renewal_invoice:{invoice['id']}",
            )
    return queued
