"""The processor's answers for a chunk written in one transaction: charges,
paid invoices, the next terms (an assigned order and batch each, the seat
holders carried over by licences.renewals.carry_over), retries and lapses, e-mails."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from piccolo.query import Select

from portal import db
from portal.domain.billing import provision_claims, refunds
from portal.domain.billing.invoices import format_invoice_number
from portal.domain.billing.renewal import notices, schedule
from portal.domain.billing.renewal.chunk import Renewal, id_list
from portal.domain.catalogue import PREMIUM, product_by_code
from portal.domain.licences.renewals import carry_over
from portal.tables import Company
from portal.tables.billing import Charge, Invoice, InvoiceStatus, Subscription, SubscriptionStatus

_OUTCOME_COLUMNS = (
    "sub INTEGER, company INTEGER, invoice INTEGER, charge_id INTEGER, outcome VARCHAR(10), "
    "reference VARCHAR(100), reason VARCHAR(200), old_end TIMESTAMPTZ, new_end TIMESTAMPTZ, seats INTEGER, "
    "attempt INTEGER, retry_at TIMESTAMPTZ, lapse INTEGER, po VARCHAR(20), tier VARCHAR(40), extra_users INTEGER, "
    "read_only_users INTEGER, new_order INTEGER, new_batch INTEGER"
)
# new_order and new_batch are filled by _provision.
_OUTCOME_NAMES = [part.split()[0] for part in _OUTCOME_COLUMNS.split(", ")][:-2]


async def record(now: datetime, renewals: list[Renewal]) -> None:
    """Write what the processor answered, in one transaction: charges, paid
    invoices, the next terms' batches with their seat holders, subscriptions,
    e-mails, the audit log. Only for subscriptions still ending where they were
    claimed: a chunk whose lease ran out and was taken over writes nothing twice."""
    decided = [r for r in renewals if r.outcome != "pending"]
    if not decided:
        return
    async with db.write_transaction():
        ids = [r.sub["id"] for r in decided]
        # The companies' seat lock (as licences.allocate takes it), in id order, then the subscriptions.
        await db.for_update(
            Company.select(Company.id).where(Company.id.is_in([r.sub["company"] for r in decided])).order_by(Company.id)
        )
        current = {s["id"]: s for s in await db.for_update(_subscriptions_now(ids))}
        decided = [
            r
            for r in decided
            if r.sub["id"] in current
            and current[r.sub["id"]]["term_end"] == r.old_end
            and current[r.sub["id"]]["status"] == SubscriptionStatus.ACTIVE
        ]
        decided = await _set_aside_void(decided, now)
        decided = await _claim_provisioning(decided, now)
        if not decided:
            return
        await db.scratch_table("renewal_outcome", _OUTCOME_COLUMNS)
        await db.copy_rows(
            "renewal_outcome",
            _OUTCOME_NAMES,
            [
                (
                    r.sub["id"],
                    r.sub["company"],
                    r.invoice["id"],
                    r.charge["id"] if r.charge else None,
                    r.outcome,
                    r.reference,
                    r.reason,
                    r.old_end,
                    r.new_end,
                    r.seats,
                    r.attempt,
                    schedule.retry_at(r.old_end, r.attempt) if r.outcome == "declined" else None,
                    int(r.outcome == "declined" and r.attempt >= schedule.ATTEMPTS),
                    format_invoice_number(r.invoice["number"]),
                    r.tier,
                    r.extra_users,
                    r.read_only_users,
                )
                for r in decided
            ],
        )
        await _provision(now)
        for statement in _RECORD_SQL:
            await Company.raw(statement, *([now] * statement.count("{}")))
        new_batches = await Company.raw("SELECT new_batch FROM renewal_outcome WHERE new_batch IS NOT NULL")
        await carry_over([row["new_batch"] for row in new_batches], now)
        await notices.renewal_mails_and_audit(decided, now)


async def _set_aside_void(decided: list[Renewal], now: datetime) -> list[Renewal]:
    """Money taken for a renewal invoice voided while the processor was asked (possible
    only once the attempt's lease ran out: a void is refused before): the charge is
    recorded as taken, audited and refunded in full (refunds.py; the partner's Failed
    charges list shows it until the refund succeeded); nothing is provisioned for it
    and the subscription is left for the next run, which finds the invoice that
    replaced it, or none. The others are returned."""
    charged = {r.invoice["id"]: r for r in decided if r.outcome == "paid" and r.charge is not None}
    if not charged:
        return decided
    void = await db.for_update(
        Invoice.select(Invoice.id).where(Invoice.id.is_in(sorted(charged)) & (Invoice.status == InvoiceStatus.VOID))
    )
    if not void:
        return decided
    aside = [charged[row["id"]] for row in void]
    for r in aside:
        assert r.charge is not None
        await Charge.update({Charge.status: "succeeded", Charge.processor_ref: r.reference}).where(
            (Charge.id == r.charge["id"]) & (Charge.status == "pending")
        )
    await notices.audit_many(
        now,
        [
            (
                "invoice.charged_not_issued",
                r.sub["company"],
                {
                    "invoice": r.invoice["id"],
                    "number": format_invoice_number(r.invoice["number"]),
                    "attempt": r.charge["attempt"] if r.charge else None,
                    "amount_cents": r.invoice["total_cents"],
                    "currency": r.invoice["currency"],
                    "reference": r.reference,
                },
            )
            for r in aside
        ],
    )
    # Refunded in full, after this transaction (renew_due sends them).
    await refunds.queue_void_refunds(
        await Charge.select().where(Charge.id.is_in([r.charge["id"] for r in aside if r.charge is not None])), now
    )
    for r in aside:
        r.outcome = "pending"  # not renewed by this run
    voided = {row["id"] for row in void}
    return [r for r in decided if r.invoice["id"] not in voided]


async def _claim_provisioning(decided: list[Renewal], now: datetime) -> list[Renewal]:
    """Paid renewals are provisioned once, whoever provisions them: the claim
    settlement.provision_invoice also takes (a renewal invoice paid early by
    other means). The decided renewals left to write: those whose claim this is."""
    paid = [r for r in decided if r.outcome == "paid"]
    if not paid:
        return decided
    mine = await provision_claims.claim(
        [
            provision_claims.Claim(
                r.invoice,
                detail={"subscription": r.sub["id"], "seats": r.seats, "term_end": r.new_end.isoformat()},
            )
            for r in paid
        ],
        now,
    )
    return [r for r in decided if r.outcome != "paid" or r.invoice["id"] in mine]


def _subscriptions_now(ids: list[int]) -> Select[Any]:
    return Subscription.select(Subscription.id, Subscription.term_end, Subscription.status).where(
        Subscription.id.is_in(ids)
    )


# Statements over the scratch table; each `{}` is `now`.
_RECORD_SQL = (
    # The processor's answers, on the attempts' rows.
    "UPDATE card_charge SET status = CASE WHEN r.outcome = 'paid' THEN 'succeeded' ELSE 'declined' END, "
    "processor_ref = r.reference, decline_reason = r.reason "
    "FROM renewal_outcome AS r WHERE card_charge.id = r.charge_id AND card_charge.status = 'pending'",
    "UPDATE invoice SET status = 'paid', paid_at = {}, payment_method = 'card', payment_reference = r.reference, "
    '"order" = r.new_order FROM renewal_outcome AS r '
    "WHERE invoice.id = r.invoice AND r.outcome = 'paid' AND invoice.status = 'issued'",
    # Paid for early (the invoice was already paid): the seats it pays for are these.
    'UPDATE invoice SET "order" = r.new_order FROM renewal_outcome AS r '
    "WHERE invoice.id = r.invoice AND r.outcome = 'paid' AND invoice.\"order\" IS NULL",
    # The next term, paid: as its invoice billed it.
    "UPDATE subscription SET term_start = r.old_end, term_end = r.new_end, batch = r.new_batch, "
    "tier = r.tier, extra_users = r.extra_users, read_only_users = r.read_only_users, "
    "next_extra_users = NULL, next_read_only_users = NULL, renewal_attempts = 0, next_charge_at = NULL "
    "FROM renewal_outcome AS r WHERE subscription.id = r.sub AND r.outcome = 'paid'",
    # Declined: the next try, or lapsed after the last (its seats ended with the term).
    "UPDATE subscription SET renewal_attempts = r.attempt, next_charge_at = r.retry_at, "
    "status = CASE WHEN r.lapse = 1 THEN 'lapsed' ELSE subscription.status END "
    "FROM renewal_outcome AS r WHERE subscription.id = r.sub AND r.outcome = 'declined'",
)


async def _provision(now: datetime) -> None:
    """The paid next terms' seats: an assigned order and its batch per
    subscription, starting at the old end (as provisioning.provision_term makes
    one), from the chunk's outcome table; their ids written back to it."""
    premium = (await product_by_code(PREMIUM))["id"]
    ts = db.timestamp_param()
    orders = await Company.raw(
        "INSERT INTO licence_order (company, company_path, product, quantity, status, po_number, requested_at, "
        f"decided_at, renews_batch) SELECT r.company, c.path, {{}}, r.seats, 'assigned', r.po, {ts}, {ts}, s.batch "
        "FROM renewal_outcome AS r JOIN company AS c ON c.id = r.company JOIN subscription AS s ON s.id = r.sub "
        "WHERE r.outcome = 'paid' RETURNING id",
        premium,
        now,
        now,
    )
    if not orders:
        return
    await Company.raw(
        "UPDATE renewal_outcome SET new_order = o.id FROM licence_order AS o "
        f"WHERE o.company = renewal_outcome.company AND o.id IN ({id_list(o['id'] for o in orders)})"
    )
    await Company.raw(
        'INSERT INTO licence_batch ("order", company, product, seats, allocated, starts_at, ends_at) '
        "SELECT r.new_order, r.company, {}, r.seats, 0, r.old_end, r.new_end FROM renewal_outcome AS r "
        "WHERE r.new_order IS NOT NULL",
        premium,
    )
    await Company.raw(
        "UPDATE renewal_outcome SET new_batch = b.id FROM licence_batch AS b "
        'WHERE b."order" = renewal_outcome.new_order'
    )
