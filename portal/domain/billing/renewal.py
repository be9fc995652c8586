"""Renewals that run by themselves (issue 11, seed 000: "automatically set to
renew one year after your initial payment date").

Online subscriptions (`renew_due`): from a day before the term ends, the
renewal invoice is issued, the saved card charged, and the paid term
provisioned as a new licence batch starting where the old one ends, with the
current seat holders carried over. A declined charge is tried again 2, 4 and 7
days after the term's end (three retries in seven days), the customer's managers
e-mailed each time; after the last the subscription lapses (its seats stopped at
the term's end: no batch was made for the next term).

Invoice subscriptions (`issue_renewal_invoices`): the renewal invoice 30 days
before the end, a reminder 72 hours before it while unpaid. Paying it
(subscriptions.record_payment) provisions the next term from the old end, so a
renewal paid early leaves no gap.

`lapse_unpaid`: at the term's end a cancelled subscription ends, an unpaid one lapses.

Idempotent by construction, whoever runs it and however often:
- the renewal invoice has the key subscriptions.renewal_key (subscription and term);
- each charge attempt is a card_charge row keyed "<invoice>:<attempt>" written
  (pending) before the processor is asked with that key, as
  payments.charge_invoice does; a processor answers a key once;
- a claim: the chunk's subscriptions get `next_charge_at` = now + lease in the
  transaction that picks them (PostgreSQL skips rows another worker is
  picking), so a second worker passes them by; a worker that dies gives them
  back when the lease runs out, and the next asks the processor again with the
  same key, which charges nothing twice;
- the result is written only while the subscription still ends where it was
  claimed, so a term is provisioned once.

Set-based per chunk (a few statements for 500 subscriptions, whatever their
number); the processor is asked once per card, outside any transaction."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.query import Select

from portal import db
from portal.domain import outbox
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import money, payments, profiles, provisioning
from portal.domain.billing.invoices import format_invoice_number, totals
from portal.domain.billing.quotes import format_day, term_lines
from portal.domain.billing.subscriptions import renewal_key
from portal.domain.catalogue import PREMIUM, product_by_code
from portal.tables import Company, User
from portal.tables_billing import (
    BillingAccount,
    BillingProfile,
    CatalogueItem,
    Charge,
    Invoice,
    Subscription,
)

log = logging.getLogger("portal.billing.renewal")

# An online subscription is charged from this long before its term ends.
DUE_AHEAD = timedelta(days=1)
# Declined: tried again this long after the term's end; after the last, lapsed.
RETRIES_AFTER_END = (timedelta(days=2), timedelta(days=4), timedelta(days=7))
ATTEMPTS = 1 + len(RETRIES_AFTER_END)
# A claimed chunk is someone's for this long: the same lease as a pending charge's.
LEASE = payments.PENDING_LEASE
# Invoice subscriptions.
INVOICE_AHEAD = timedelta(days=30)
REMINDER_AHEAD = timedelta(hours=72)
NO_CARD = "No card is saved on the billing account."


def retry_at(term_end: datetime, attempt: int) -> datetime | None:
    """When the attempt after a declined `attempt` (1-based) is due; None after the last."""
    return term_end + RETRIES_AFTER_END[attempt - 1] if attempt < ATTEMPTS else None


# --- What a chunk holds between its steps --------------------------------------


@dataclass
class _Renewal:
    sub: dict
    invoice: dict
    attempt: int
    seats: int
    tier_name: str
    new_end: datetime
    token: str | None = None
    card_last4: str | None = None
    charge: dict | None = None  # the attempt's card_charge row
    outcome: str = "pending"  # paid | declined | pending (the processor did not answer)
    reference: str | None = None
    reason: str | None = None
    ask: bool = False  # this run asks the processor

    @property
    def old_end(self) -> datetime:
        return self.sub["term_end"]


@dataclass
class _Sellers:
    """The chunk's sellers: profiles (locked for numbering) and catalogues."""

    profiles: dict[int, dict] = field(default_factory=dict)
    items: dict[int, dict[str, dict]] = field(default_factory=dict)


# --- Online subscriptions ---------------------------------------------------------


def _due_online(now: datetime) -> tuple[str, list[Any]]:
    sql = (
        "SELECT * FROM subscription WHERE method = 'online' AND status = 'active' AND auto_renew "
        "AND term_end IS NOT NULL AND term_end <= {} AND (next_charge_at IS NULL OR next_charge_at <= {})"
    )
    return sql, [now + DUE_AHEAD, now]


async def count_due(now: datetime) -> int:
    """Online subscriptions `renew_due` would take now (for spreading them over workers)."""
    sql, args = _due_online(now)
    rows = await Company.raw(f"SELECT COUNT(*) AS n FROM ({sql}) AS due", *args)
    return int(rows[0]["n"])


async def renew_due(now: datetime, *, limit: int = 500) -> dict[str, int]:
    """One chunk of due online subscriptions: invoiced, charged, provisioned or
    scheduled for a retry. Returns counts: claimed, renewed, declined, lapsed,
    pending (the processor did not answer; the lease brings them back)."""
    renewals = await _claim(now, limit)
    counts = {"claimed": len(renewals), "renewed": 0, "declined": 0, "lapsed": 0, "pending": 0}
    if not renewals:
        return counts
    card_processor = payments.processor()
    for renewal in renewals:
        if not renewal.ask:
            continue
        assert renewal.token is not None and renewal.charge is not None
        try:
            result = await card_processor.charge(
                renewal.token,
                renewal.invoice["total_cents"],
                renewal.invoice["currency"],
                renewal.charge["idempotency_key"],
            )
        except Exception:
            # Unanswered: the charge stays pending and the lease brings it back to be asked again with its key.
            log.exception("card processor failed", extra={"charge": renewal.charge["idempotency_key"]})
            continue
        renewal.outcome = "paid" if result.ok else "declined"
        renewal.reference = result.reference
        renewal.reason = None if result.ok else (result.decline_reason or payments.CARD_DECLINED)[:200]
    await _record(now, renewals)
    for renewal in renewals:
        if renewal.outcome == "paid":
            counts["renewed"] += 1
        elif renewal.outcome == "declined":
            counts["lapsed" if renewal.attempt >= ATTEMPTS else "declined"] += 1
        else:
            counts["pending"] += 1
    return counts


async def _claim(now: datetime, limit: int) -> list[_Renewal]:
    """Pick a chunk and hold it for LEASE; issue its renewal invoices (or find
    them) and write each attempt's charge row, all in one short transaction."""
    sql, args = _due_online(now)
    skip_locked = " FOR UPDATE SKIP LOCKED" if db.is_postgres() else ""
    async with db.write_transaction():
        subs = await Company.raw(f"{sql} ORDER BY term_end, id LIMIT {int(limit)}{skip_locked}", *args)
        if not subs:
            return []
        ids = [s["id"] for s in subs]
        await Company.raw(f"UPDATE subscription SET next_charge_at = {{}} WHERE id IN ({_ints(ids)})", now + LEASE)
        sellers = await _sellers({s["partner"] for s in subs})
        invoices = await _renewal_invoices(subs, sellers, now)
        accounts = {
            a["company"]: a
            for a in await BillingAccount.select(
                BillingAccount.company, BillingAccount.card_token, BillingAccount.card_last4
            ).where(BillingAccount.company.is_in([s["company"] for s in subs]))
        }
        renewals = []
        for sub in subs:
            items = sellers.items[sub["partner"]]
            tier = items[sub["tier"]]
            extra = _next(sub, "extra_users")
            account = accounts.get(sub["company"], {})
            renewals.append(
                _Renewal(
                    sub=sub,
                    invoice=invoices[sub["id"]],
                    attempt=sub["renewal_attempts"] + 1,
                    seats=tier["included_users"] + extra,
                    tier_name=tier["name"],
                    new_end=money.term_end(sub["term_end"]),
                    token=account.get("card_token"),
                    card_last4=account.get("card_last4"),
                )
            )
        await _open_charges(renewals, now)
    return renewals


def _next(sub: dict, name: str) -> int:
    """Fewer users asked for during the term take effect at the renewal."""
    later = sub[f"next_{name}"]
    return int(sub[name] if later is None else later)


def _ints(ids: Any) -> str:
    return ", ".join(str(int(i)) for i in ids)


async def _sellers(partner_ids: set[int]) -> _Sellers:
    """The sellers' profiles, locked in id order (invoice numbers are taken from
    them), and their catalogues; both written with the defaults if never read."""
    found = _Sellers()
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


async def _renewal_invoices(subs: list[dict], sellers: _Sellers, now: datetime) -> dict[int, dict]:
    """Each subscription's renewal invoice for the term after its current one:
    the one already issued under its key (an earlier attempt, or the customer's
    "Request an invoice"), else a new one with the seller's next number. By
    subscription id."""
    keys = {renewal_key(s): s for s in subs}
    existing = await Invoice.select().where(Invoice.idempotency_key.is_in(list(keys)))
    found = {keys[i["idempotency_key"]]["id"]: i for i in existing}
    missing = [s for s in subs if s["id"] not in found]
    found.update(await issue_invoices(missing, sellers, now, due_at=lambda s: s["term_end"]))
    return found


async def issue_invoices(subs: list[dict], sellers: _Sellers, now: datetime, *, due_at: Any) -> dict[int, dict]:
    """Renewal invoices for `subs` (none issued yet), in one go: numbers taken
    from the locked seller profiles, as invoices.create_invoice takes one. Inside
    the caller's transaction; by subscription id."""
    if not subs:
        return {}
    companies = {
        c["id"]: c
        for c in await Company.select(Company.id, Company.path).where(Company.id.is_in([s["company"] for s in subs]))
    }
    by_seller: dict[int, list[dict]] = defaultdict(list)
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
                items, items[sub["tier"]], _next(sub, "extra_users"), _next(sub, "read_only_users"), currency
            )
            sums = totals(lines, profile["tax_rate_bp"], currency)
            key = renewal_key(sub)
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
    await _audit(
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


async def _open_charges(renewals: list[_Renewal], now: datetime) -> None:
    """Each attempt's card_charge row, written pending before the processor is
    asked (payments.charge_invoice's protocol), or found: a finished attempt
    answers as it ended; a pending one whose worker is gone is asked again."""
    chargeable = [r for r in renewals if r.invoice["status"] == "issued"]
    for renewal in renewals:
        if renewal.invoice["status"] == "paid":
            renewal.outcome, renewal.reference = "paid", renewal.invoice["payment_reference"]
        elif renewal.invoice["status"] != "issued":
            # Void with nothing replacing it: nothing to charge; the retry schedule runs as for a decline.
            renewal.outcome, renewal.reason = "declined", "The renewal invoice was voided."
    if not chargeable:
        return
    keys = {payments.charge_key(r.invoice["id"], r.attempt): r for r in chargeable}
    await db.scratch_table(
        "renewal_charge",
        "invoice INTEGER, attempt INTEGER, amount_cents BIGINT, currency VARCHAR(3), idempotency_key VARCHAR(120)",
    )
    await db.copy_rows(
        "renewal_charge",
        ("invoice", "attempt", "amount_cents", "currency", "idempotency_key"),
        [(r.invoice["id"], r.attempt, r.invoice["total_cents"], r.invoice["currency"], key) for key, r in keys.items()],
    )
    # "WHERE true": SQLite reads ON CONFLICT after a bare SELECT … FROM as a join's ON.
    written = await Company.raw(
        "INSERT INTO card_charge (invoice, attempt, amount_cents, currency, status, attempted_at, idempotency_key) "
        f"SELECT invoice, attempt, amount_cents, currency, 'pending', {db.timestamp_param()}, idempotency_key "
        "FROM renewal_charge WHERE true ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
        now,
    )
    mine = {row["idempotency_key"] for row in written}
    taken_over = []
    for row in await Charge.select().where(Charge.idempotency_key.is_in(list(keys))):
        renewal = keys[row["idempotency_key"]]
        renewal.charge = row
        if row["status"] == "succeeded":
            renewal.outcome, renewal.reference = "paid", row["processor_ref"]
        elif row["status"] == "declined":
            renewal.outcome, renewal.reason = "declined", row["decline_reason"]
        elif renewal.token is None:
            renewal.outcome, renewal.reason = "declined", NO_CARD
        elif row["idempotency_key"] in mine:
            renewal.ask = True
        elif row["attempted_at"] <= now - payments.PENDING_LEASE:
            # Left pending by a worker that died while asking: asked again with the same key.
            renewal.ask = True
            taken_over.append(row["id"])
        # else: someone is asking the processor about this attempt right now; its answer will do.
    if taken_over:
        await Charge.update({Charge.attempted_at: now}).where(Charge.id.is_in(taken_over))


_OUTCOME_COLUMNS = (
    "sub INTEGER, company INTEGER, invoice INTEGER, charge_id INTEGER, outcome VARCHAR(10), "
    "reference VARCHAR(100), reason VARCHAR(200), old_end TIMESTAMPTZ, new_end TIMESTAMPTZ, seats INTEGER, "
    "attempt INTEGER, retry_at TIMESTAMPTZ, lapse INTEGER, po VARCHAR(20), new_order INTEGER, new_batch INTEGER"
)
# new_order and new_batch are filled by _provision.
_OUTCOME_NAMES = [part.split()[0] for part in _OUTCOME_COLUMNS.split(", ")][:-2]


async def _record(now: datetime, renewals: list[_Renewal]) -> None:
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
            and current[r.sub["id"]]["status"] == "active"
        ]
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
                    retry_at(r.old_end, r.attempt) if r.outcome == "declined" else None,
                    int(r.outcome == "declined" and r.attempt >= ATTEMPTS),
                    format_invoice_number(r.invoice["number"]),
                )
                for r in decided
            ],
        )
        await _provision(now)
        for statement in _RECORD_SQL:
            await Company.raw(statement, *([now] * statement.count("{}")))
        new_batches = await Company.raw("SELECT new_batch FROM renewal_outcome WHERE new_batch IS NOT NULL")
        await provisioning.carry_over([row["new_batch"] for row in new_batches], now)
        await _mails_and_audit(decided, now)


async def _claim_provisioning(decided: list[_Renewal], now: datetime) -> list[_Renewal]:
    """Paid renewals are provisioned once, whoever provisions them: the audit entry
    "subscription.provision" keyed `provision:<invoice>` is the claim that
    subscriptions.provision_invoice also takes (a renewal invoice paid early by
    other means). The decided renewals left to write: those whose claim this is."""
    paid = [r for r in decided if r.outcome == "paid"]
    if not paid:
        return decided
    await db.scratch_table("renewal_claim", "at TIMESTAMPTZ, company INTEGER, detail JSON, dedupe_key VARCHAR(120)")
    await db.copy_rows(
        "renewal_claim",
        ("at", "company", "detail", "dedupe_key"),
        [
            (
                now,
                r.sub["company"],
                json.dumps(
                    {
                        "invoice": r.invoice["id"],
                        "kind": "renewal",
                        "total_cents": r.invoice["total_cents"],
                        "currency": r.invoice["currency"],
                        "subscription": r.sub["id"],
                        "seats": r.seats,
                        "term_end": r.new_end.isoformat(),
                    }
                ),
                f"provision:{r.invoice['id']}",
            )
            for r in paid
        ],
    )
    won = await Company.raw(
        "INSERT INTO audit_entry (at, company, action, detail, dedupe_key) "
        "SELECT at, company, 'subscription.provision', detail, dedupe_key FROM renewal_claim WHERE true "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key"
    )
    mine = {row["dedupe_key"] for row in won}
    return [r for r in decided if r.outcome != "paid" or f"provision:{r.invoice['id']}" in mine]


def _subscriptions_now(ids: list[int]) -> Select:
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
    # The next term, paid.
    "UPDATE subscription SET term_start = r.old_end, term_end = r.new_end, batch = r.new_batch, "
    "extra_users = COALESCE(subscription.next_extra_users, subscription.extra_users), "
    "read_only_users = COALESCE(subscription.next_read_only_users, subscription.read_only_users), "
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
        f"decided_at) SELECT r.company, c.path, {{}}, r.seats, 'assigned', r.po, {ts}, {ts} "
        "FROM renewal_outcome AS r JOIN company AS c ON c.id = r.company WHERE r.outcome = 'paid' RETURNING id",
        premium,
        now,
        now,
    )
    if not orders:
        return
    await Company.raw(
        "UPDATE renewal_outcome SET new_order = o.id FROM licence_order AS o "
        f"WHERE o.company = renewal_outcome.company AND o.id IN ({_ints(o['id'] for o in orders)})"
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


# --- E-mails and the audit log ---------------------------------------------------------


async def _managers(company_ids: set[int]) -> dict[int, list[str]]:
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


async def _names(company_ids: set[int]) -> dict[int, str]:
    if not company_ids:
        return {}
    return {
        c["id"]: c["name"]
        for c in await Company.select(Company.id, Company.name).where(Company.id.is_in(sorted(company_ids)))
    }


async def _mails_and_audit(decided: list[_Renewal], now: datetime) -> None:
    companies = {r.sub["company"] for r in decided}
    managers = await _managers(companies)
    names = await _names(companies | {r.sub["partner"] for r in decided})
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
                f"Your {r.tier_name} licence is renewed until {format_day(r.new_end)}",
                f"The {r.tier_name} annual licence of {names[company]} renewed on its date, for {r.seats} standard "
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
        retry = retry_at(r.old_end, r.attempt)
        if r.charge is not None and r.charge["status"] == "pending":
            entries.append(("invoice.charge_declined", company, {**money_detail, "decline_reason": r.reason}))
        if retry is not None:
            await outbox.queue_email(
                "renewal_charge_failed",
                company,
                managers[company],
                f"We could not charge your card for the {r.tier_name} licence renewal",
                f"The renewal of the {r.tier_name} annual licence of {names[company]} could not be paid: {r.reason}\n"
                f"Invoice {number}: {amount}.\n"
                f"We will try the card again on {format_day(retry)}. To avoid a lapse, check the card on the "
                "billing account before then.\n"
                + (f"The licences end on {format_day(r.old_end)} unless it is paid.\n" if r.old_end > now else "")
                + f"\nBilling: {billing}",
                now,
                dedupe=f"renewal_charge_failed:{invoice['id']}:{r.attempt}",
            )
        else:
            await _lapsed_mail(r.sub, names[company], managers[company], now, reason=r.reason)
            entries.append(("subscription.lapse", company, {**money_detail, "term_end": r.old_end.isoformat()}))
    await _audit(now, entries)


async def _lapsed_mail(sub: dict, company_name: str, recipients: list[str], now: datetime, reason: str | None) -> None:
    billing = outbox.link(f"/companies/{sub['company']}/billing")
    why = f"The renewal could not be paid: {reason}\n" if reason else "The renewal invoice was not paid.\n"
    await outbox.queue_email(
        "subscription_lapsed",
        sub["company"],
        recipients,
        f"The licence subscription of {company_name} has lapsed",
        f"{why}The licences of {company_name} ended on {format_day(sub['term_end'])}.\n"
        "Buy a subscription again under Billing to give everyone their seats back.\n\n"
        f"Billing: {billing}",
        now,
        dedupe=f"subscription_lapsed:{sub['id']}:{sub['term_end'].astimezone(UTC).isoformat()}",
    )


async def _audit(now: datetime, entries: list[tuple[str, int, dict]]) -> None:
    """audit.record for many: by the system (no actor), amounts in cents with their currency."""
    await db.copy_rows(
        "audit_entry",
        ("at", "company", "action", "detail"),
        [(now, company, action, json.dumps(detail)) for action, company, detail in entries],
    )


# --- Invoice subscriptions ---------------------------------------------------------


async def issue_renewal_invoices(now: datetime, *, limit: int = 500) -> dict[str, int]:
    """Invoice subscriptions: the renewal invoice from 30 days before the term's
    end (under the same key as "Request an invoice", so never two), e-mailed to
    the managers; a reminder from 72 hours before the end while it is unpaid.
    A cancellation requested and awaiting the partner stops both."""
    live = (
        "s.method = 'invoice' AND s.status = 'active' AND s.auto_renew AND s.cancel_requested_at IS NULL "
        "AND s.term_end IS NOT NULL AND s.term_end > {}"
    )
    has_invoice = (
        "EXISTS (SELECT 1 FROM invoice AS i WHERE i.subscription = s.id AND i.kind = 'renewal' "
        "AND i.term_start = s.term_end AND i.status <> 'void')"
    )
    issued: dict[int, dict] = {}
    async with db.write_transaction():
        subs = await Company.raw(
            f"SELECT s.* FROM subscription AS s WHERE {live} AND s.term_end <= {{}} AND NOT {has_invoice} "
            f"ORDER BY s.term_end, s.id LIMIT {int(limit)}",
            now,
            now + INVOICE_AHEAD,
        )
        if subs:
            sellers = await _sellers({s["partner"] for s in subs})
            # Under the sellers' locks: a "Request an invoice" that got in first keeps its invoice.
            taken = {
                i["idempotency_key"]
                for i in await Invoice.select(Invoice.idempotency_key).where(
                    Invoice.idempotency_key.is_in([renewal_key(s) for s in subs])
                )
            }
            subs = [s for s in subs if renewal_key(s) not in taken]
            issued = await issue_invoices(subs, sellers, now, due_at=lambda s: s["term_end"])
            await _invoice_mails(list(issued.values()), {s["id"]: s for s in subs}, now, reminder=False)
    reminded = await _remind(now, live, limit)
    return {"issued": len(issued), "reminded": reminded}


async def _remind(now: datetime, live: str, limit: int) -> int:
    async with db.write_transaction():
        rows = await Company.raw(
            "SELECT i.*, s.term_end AS sub_term_end FROM subscription AS s JOIN invoice AS i "
            "ON i.subscription = s.id AND i.kind = 'renewal' AND i.term_start = s.term_end AND i.status = 'issued' "
            f"WHERE {live} AND s.term_end <= {{}} ORDER BY s.term_end, s.id LIMIT {int(limit)}",
            now,
            now + REMINDER_AHEAD,
        )
        subs = {
            r["subscription"]: {
                "id": r["subscription"],
                "term_end": r["sub_term_end"],
                "company": r["company"],
                "partner": r["partner"],
            }
            for r in rows
        }
        return await _invoice_mails(rows, subs, now, reminder=True)


async def _invoice_mails(invoices: list[dict], subs: dict[int, dict], now: datetime, *, reminder: bool) -> int:
    """Returns how many e-mails were queued (a reminder already sent queues none)."""
    companies = {i["company"] for i in invoices}
    managers = await _managers(companies)
    names = await _names(companies | {i["partner"] for i in invoices})
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
                f"Reminder: the licences of {names[company]} end on {ends}; "
                f"invoice {format_invoice_number(invoice['number'])} is unpaid",
                f"The renewal invoice {number} ({amount}) is not paid yet, and the licences of {names[company]} "
                f"end on {ends}.\n{pay}\n\nInvoice: {view}",
                now,
                dedupe=f"renewal_invoice_reminder:{invoice['id']}",
            )
        else:
            queued += await outbox.queue_email(
                "renewal_invoice",
                company,
                managers[company],
                f"Renewal invoice {format_invoice_number(invoice['number'])} for the licences of {names[company]}",
                f"The annual licence of {names[company]} ends on {ends}. The renewal invoice {number} is issued: "
                f"{amount}.\n{pay}\n\nInvoice: {view}",
                now,
                dedupe=f"renewal_invoice:{invoice['id']}",
            )
    return queued


# --- The end of a term ----------------------------------------------------------


async def lapse_unpaid(now: datetime) -> int:
    """Subscriptions whose term has ended with nothing to follow it: a cancelled
    one ends; an unpaid one lapses (an online one once its retries are spent,
    which renew_due does itself; an invoice one at its end), its managers
    e-mailed. Their seats already stopped at the term's end: the batches end
    there and no batch was made for a next term. Returns how many changed."""
    async with db.write_transaction():
        ended = await Company.raw(
            "UPDATE subscription SET status = 'ended', next_charge_at = NULL WHERE status = 'active' "
            "AND NOT auto_renew AND term_end IS NOT NULL AND term_end <= {} RETURNING id, company",
            now,
        )
        lapsed = await Company.raw(
            "UPDATE subscription SET status = 'lapsed', next_charge_at = NULL WHERE status = 'active' AND auto_renew "
            "AND term_end IS NOT NULL AND term_end <= {} "
            "AND (method = 'invoice' OR renewal_attempts >= {}) RETURNING *",
            now,
            ATTEMPTS,
        )
        names = await _names({s["company"] for s in lapsed})
        managers = await _managers({s["company"] for s in lapsed})
        for sub in lapsed:
            await _lapsed_mail(sub, names[sub["company"]], managers[sub["company"]], now, reason=None)
        await _audit(
            now,
            [("subscription.end", s["company"], {"subscription": s["id"]}) for s in ended]
            + [
                ("subscription.lapse", s["company"], {"subscription": s["id"], "term_end": s["term_end"].isoformat()})
                for s in lapsed
            ],
        )
    return len(ended) + len(lapsed)
