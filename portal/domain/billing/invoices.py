"""Invoices: issued with the seller's next number, never edited afterwards.

issued → paid, issued → void ("void and reissue" writes a new invoice that
`replaces` the old). Numbers are per seller and gapless: the number is taken
from the seller's billing_profile row under that row's lock, in the transaction
that writes the invoice, so concurrent issuers queue on the row and a rolled
back issue gives its number back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from piccolo.custom_types import Combinable
from piccolo.query import Select

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, may_act_on, require, require_partner_manager, under_wing
from portal.domain.billing import money, profiles, unpaid_purchase
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.domain.filters import Filter, FilterSet, as_date, as_int, day_end, day_start, one_of
from portal.domain.keyset import Keyset, KeysetPage
from portal.domain.orders.decisions import InvalidTransition
from portal.tables import Company, OrderStatus
from portal.tables.billing import (
    INVOICE_STATUSES,
    PAYMENT_METHODS,
    BillingAccount,
    BillingProfile,
    Charge,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Subscription,
)

KINDS = ("purchase", "renewal", "change", "addon")
KIND_LABELS = {"purchase": "Purchase", "renewal": "Renewal", "change": "Change", "addon": "Add-on"}
METHOD_LABELS = {
    "card": "Card",
    "card_by_phone": "Card by phone",
    "bank_transfer": "Bank transfer",
    "money_order": "Money order",
    "check": "Check",
}
MAX_LINES = 100
MAX_QUANTITY = 1_000_000
# A card charge left "pending" this long belongs to a worker that died while asking
# the processor (payments.charge_invoice); until then the invoice is being paid.
PAYMENT_LEASE = timedelta(minutes=5)
PAYMENT_IN_PROGRESS = "A payment of this invoice is in progress: try again in a few minutes."


class InvoiceTransition(InvalidTransition):
    """The invoice's status forbids the step (paid twice, voiding a paid one)."""

    def __init__(self, status: str, wanted: str) -> None:
        super().__init__(status, wanted)
        self.errors = {"status": f"This invoice is already {status}; it cannot be {wanted}."}
        self.args = (self.errors["status"],)


@dataclass(frozen=True)
class Line:
    code: str
    description: str
    quantity: int
    unit_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_cents


@dataclass(frozen=True)
class Totals:
    subtotal_cents: int
    tax_rate_bp: int
    tax_cents: int
    total_cents: int
    currency: str


@dataclass(frozen=True)
class Quoted:
    """The price a quote page showed, as its form sends it back with "confirm", and
    the key drawn with that page: the same confirmation sent again carries the same
    key (billing/confirmations.py). The key is not part of the price."""

    total_cents: int
    currency: str
    tax_rate_bp: int
    key: str = field(default="", compare=False)

    @classmethod
    def of(cls, sums: Totals) -> Quoted:
        return cls(sums.total_cents, sums.currency, sums.tax_rate_bp)


def check_price(quoted: Quoted | None, sums: Totals) -> None:
    """ValidationFailed({"price": …}) unless `sums` is what was quoted (None: nothing was
    quoted, as for the renewal job). Prices, tax rate, currency and the day (pro rata)
    may all have moved since the page was drawn."""
    if quoted is None or Quoted.of(sums) == quoted:
        return
    now = money.format_money(sums.total_cents, sums.currency)
    shown = quoted.total_cents >= 0 and quoted.currency in profiles.CURRENCIES
    before = f", {money.format_money(quoted.total_cents, quoted.currency)} before" if shown else ""
    said = f"The price changed since you saw it: {now} now{before}. Check the new price below and confirm again."
    raise ValidationFailed({"price": said})


def totals(lines: Iterable[Line], tax_rate_bp: int, currency: str) -> Totals:
    """The subtotal is the sum of the lines; tax is rounded half-up once, on the subtotal."""
    subtotal = sum(line.amount_cents for line in lines)
    tax = money.apply_rate(subtotal, tax_rate_bp)
    return Totals(subtotal, tax_rate_bp, tax, subtotal + tax, currency)


def format_invoice_number(number: int) -> str:
    """5 digits, more when needed: 123 → "INV-00123", 1234567 → "INV-1234567"."""
    return f"INV-{number:05d}"


def _check_lines(lines: Sequence[Line]) -> None:
    """The caller's lines come from the catalogue and quotes, not from a form:
    a bad one is a bug, refused before anything is written."""
    if not 1 <= len(lines) <= MAX_LINES:
        raise ValueError(f"an invoice has 1 to {MAX_LINES} lines, not {len(lines)}")
    for line in lines:
        if not 1 <= line.quantity <= MAX_QUANTITY or line.unit_cents < 0 or not line.description.strip():
            raise ValueError(f"not an invoice line: {line!r}")


async def _lock_profile(partner_id: int) -> dict[str, Any]:
    query = BillingProfile.select().where(BillingProfile.company == partner_id)
    row = await db.for_update(query).first()
    if row is None:
        await profiles.profile(partner_id)
        row = await db.for_update(query).first()
        assert row is not None, "profile() writes it"
    return row


async def _by_key(key: str) -> dict[str, Any] | None:
    return await Invoice.select().where(Invoice.idempotency_key == key).first()


async def create_invoice(
    *,
    partner_id: int,
    company_id: int,
    kind: str,
    lines: Sequence[Line],
    now: datetime,
    subscription_id: int | None = None,
    order_id: int | None = None,
    term_start: datetime | None = None,
    term_end: datetime | None = None,
    idempotency_key: str | None = None,
    due_days: int = 30,
    actor: Actor | None = None,
    replaces: int | None = None,
    quoted: Quoted | None = None,
) -> dict[str, Any]:
    """Issue an invoice at once, with the seller's next number, its currency and
    tax rate. Call it inside the caller's `db.write_transaction()` so the
    invoice, its number and what it pays for commit together (alone it takes its
    own). With an `idempotency_key` already taken, the invoice that has it is
    returned and nothing is written. The seller must be the company's parent.
    `quoted`: the price the buyer confirmed; any other total (a tax rate or currency
    saved meanwhile) is refused with check_price's message, nothing written."""
    if kind not in KINDS:
        raise ValueError(f"not an invoice kind: {kind}")
    lines = list(lines)
    _check_lines(lines)
    async with db.write_transaction():
        company = await Company.select(Company.path, Company.parent).where(Company.id == company_id).first()
        if company is None or company["parent"] != partner_id:
            raise ValueError(f"company {company_id} does not buy from {partner_id}")
        # The lock comes before the key is looked up: a second issuer with the
        # same key waits here, then finds the first one's invoice.
        seller = await _lock_profile(partner_id)
        if idempotency_key is not None:
            existing = await _by_key(idempotency_key)
            if existing is not None:
                return existing
        sums = totals(lines, seller["tax_rate_bp"], seller["currency"])
        check_price(quoted, sums)
        number = seller["next_invoice_number"]
        await BillingProfile.update({BillingProfile.next_invoice_number: number + 1}).where(
            BillingProfile.id == seller["id"]
        )
        invoice = (
            await Invoice.insert(
                Invoice(
                    partner=partner_id,
                    company=company_id,
                    company_path=company["path"],
                    subscription=subscription_id,
                    order=order_id,
                    number=number,
                    status=InvoiceStatus.ISSUED,
                    kind=kind,
                    currency=sums.currency,
                    subtotal_cents=sums.subtotal_cents,
                    tax_rate_bp=sums.tax_rate_bp,
                    tax_cents=sums.tax_cents,
                    total_cents=sums.total_cents,
                    term_start=term_start,
                    term_end=term_end,
                    created_at=now,
                    issued_at=now,
                    due_at=now + timedelta(days=due_days),
                    replaces=replaces,
                    idempotency_key=idempotency_key,
                )
            ).returning(*Invoice.all_columns())
        )[0]
        await InvoiceLine.insert(
            *(
                InvoiceLine(
                    invoice=invoice["id"],
                    position=position,
                    code=line.code,
                    description=line.description.strip()[:300],
                    quantity=line.quantity,
                    unit_cents=line.unit_cents,
                    amount_cents=line.amount_cents,
                )
                for position, line in enumerate(lines, start=1)
            )
        )
        await audit.record(
            actor,
            "invoice.issue",
            company_id,
            now,
            {
                "invoice": invoice["id"],
                "number": format_invoice_number(number),
                "kind": kind,
                "total_cents": sums.total_cents,
                "tax_cents": sums.tax_cents,
                "currency": sums.currency,
            },
        )
    return invoice


async def _lock_invoice(invoice_id: int) -> dict[str, Any] | None:
    return await db.for_update(Invoice.select().where(Invoice.id == invoice_id)).first()


async def mark_paid(
    invoice_id: int, *, method: str, reference: str, now: datetime, recorded_by: int | None, actor: Actor | None = None
) -> dict[str, Any]:
    """issued → paid, inside the caller's transaction; paid twice is refused
    (InvalidTransition), so two people recording one payment record it once.
    The caller has checked who may record it."""
    if method not in PAYMENT_METHODS:
        raise ValidationFailed({"method": "Choose how it was paid."})
    reference = " ".join(reference.split())
    if len(reference) > 100:
        raise ValidationFailed({"reference": "Use at most 100 characters."})
    async with db.write_transaction():
        invoice = await _lock_invoice(invoice_id)
        if invoice is None:
            raise NotFound("No such invoice.")
        if invoice["status"] != InvoiceStatus.ISSUED:
            raise InvoiceTransition(invoice["status"], InvoiceStatus.PAID)
        changes: dict[str, Any] = {
            "status": InvoiceStatus.PAID,
            "paid_at": now,
            "payment_method": method,
            "payment_reference": reference or None,
            "recorded_by": recorded_by,
        }
        await Invoice.update(**changes).where(Invoice.id == invoice_id)
        await audit.record(
            actor,
            "invoice.paid",
            invoice["company"],
            now,
            {
                "invoice": invoice_id,
                "number": format_invoice_number(invoice["number"]),
                "method": method,
                "reference": reference,
                "total_cents": invoice["total_cents"],
                "currency": invoice["currency"],
            },
            actor_id=recorded_by,
        )
    return {**invoice, **changes}


async def lock_with_subscription(invoice_id: int) -> dict[str, Any] | None:
    """The invoice's row lock, after its subscription's: the order every billing write
    takes them in (locks.py), so a change (which holds the subscription and then
    reissues its renewal invoice) and staff acting on that invoice never deadlock."""
    head = await Invoice.select(Invoice.subscription).where(Invoice.id == invoice_id).first()
    if head is not None and head["subscription"] is not None:
        await db.for_update(Subscription.select(Subscription.id).where(Subscription.id == head["subscription"]))
    return await _lock_invoice(invoice_id)


async def _lock_for_staff(actor: Actor, invoice_id: int) -> dict[str, Any]:
    invoice = await lock_with_subscription(invoice_id)
    if invoice is None or not may_act_on(actor, invoice["company_path"]):
        raise NotFound("No such invoice.")
    require_partner_manager(actor)
    require(actor, Capability.INVOICES)
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change anything.")
    return invoice


async def _void(actor: Actor | None, invoice: dict[str, Any], reason: str, now: datetime) -> dict[str, Any]:
    """The invoice is locked by the caller, as a charge locks it to open its attempt."""
    if invoice["status"] != InvoiceStatus.ISSUED:
        raise InvoiceTransition(invoice["status"], InvoiceStatus.VOID)
    if await Charge.exists().where(
        (Charge.invoice == invoice["id"]) & (Charge.status == "pending") & (Charge.attempted_at > now - PAYMENT_LEASE)
    ):
        # Voided now, the card might be charged for a void invoice a moment later.
        raise ValidationFailed({"status": PAYMENT_IN_PROGRESS})
    changes: dict[str, Any] = {"status": InvoiceStatus.VOID, "voided_at": now, "void_reason": reason}
    await Invoice.update(**changes).where(Invoice.id == invoice["id"])
    await audit.record(
        actor,
        "invoice.void",
        invoice["company"],
        now,
        {
            "invoice": invoice["id"],
            "number": format_invoice_number(invoice["number"]),
            "reason": reason,
            "total_cents": invoice["total_cents"],
            "currency": invoice["currency"],
        },
    )
    return {**invoice, **changes}


async def void(actor: Actor, invoice_id: int, reason: str, now: datetime) -> dict[str, Any]:
    """Partner staff cancel an issued, unpaid invoice; it stays, numbered, marked void.
    What it was to pay for is not provisioned by it any more. A purchase's invoice
    takes the purchase with it, if never paid: its order is declined and its pending
    subscription ends (unpaid_purchase)."""
    async with db.write_transaction():
        # Who may first (another tenant's invoice is NotFound whatever the reason says), then the reason.
        invoice = await _lock_for_staff(actor, invoice_id)
        reason = " ".join(reason.split())
        if not reason:
            raise ValidationFailed({"reason": "Say why the invoice is void."})
        if len(reason) > 300:
            raise ValidationFailed({"reason": "Use at most 300 characters."})
        voided = await _void(actor, invoice, reason, now)
        if invoice["kind"] == "purchase":
            said = f"Invoice {format_invoice_number(invoice['number'])} was voided: {reason}"
            await unpaid_purchase.withdraw_order(invoice["order"], OrderStatus.DECLINED, actor, now, reason=said)
            await unpaid_purchase.end_pending(invoice["subscription"], actor, said, now)
        return voided


async def void_unpaid_purchase(actor: Actor | None, subscription_id: int, now: datetime) -> list[dict[str, Any]]:
    """The issued purchase invoices of a subscription cancelled before it was paid, voided
    and their orders withdrawn, inside the caller's transaction (which holds the
    subscription's lock). Returns them."""
    rows = await db.for_update(
        Invoice.select()
        .where(
            (Invoice.subscription == subscription_id)
            & (Invoice.kind == "purchase")
            & (Invoice.status == InvoiceStatus.ISSUED)
        )
        .order_by(Invoice.id)
    )
    voided = []
    for invoice in rows:  # one, or a handful after reissues
        voided.append(await _void(actor, invoice, unpaid_purchase.VOIDED_ON_CANCEL, now))
        await unpaid_purchase.withdraw_order(invoice["order"], OrderStatus.CANCELLED, actor, now)
    return voided


async def reissue(actor: Actor, invoice_id: int, now: datetime) -> dict[str, Any]:
    """Void an issued invoice and issue a new one with the same lines, under the
    seller's current currency and tax rate, that `replaces` it. The old one's
    idempotency key moves to the new one, so a retried renewal finds the
    invoice that is to be paid. Returns the new invoice."""
    async with db.write_transaction():
        old = await _lock_for_staff(actor, invoice_id)
        if old["status"] != InvoiceStatus.ISSUED:
            raise InvoiceTransition(old["status"], "reissued")
        rows = await InvoiceLine.select().where(InvoiceLine.invoice == invoice_id).order_by(InvoiceLine.position)
        lines = [Line(r["code"], r["description"], r["quantity"], r["unit_cents"]) for r in rows]
        return await _replace(actor, old, lines, now)


async def replace_lines(actor: Actor, invoice_id: int, lines: Sequence[Line], now: datetime) -> dict[str, Any]:
    """Void an issued invoice and issue one with other `lines` in its place (a renewal
    invoice a change makes out of date), inside the caller's transaction, which holds
    the invoice's subscription. The caller has checked who may. Returns the new invoice."""
    old = await _lock_invoice(invoice_id)
    if old is None:
        raise NotFound("No such invoice.")
    if old["status"] != InvoiceStatus.ISSUED:
        raise InvoiceTransition(old["status"], "reissued")
    return await _replace(actor, old, lines, now)


async def _replace(actor: Actor, old: dict[str, Any], lines: Sequence[Line], now: datetime) -> dict[str, Any]:
    key = old["idempotency_key"]
    if key is not None:
        await Invoice.update({Invoice.idempotency_key: None}).where(Invoice.id == old["id"])
    new = await create_invoice(
        partner_id=old["partner"],
        company_id=old["company"],
        kind=old["kind"],
        lines=lines,
        now=now,
        subscription_id=old["subscription"],
        order_id=old["order"],
        term_start=old["term_start"],
        term_end=old["term_end"],
        idempotency_key=key,
        due_days=max(0, (old["due_at"] - old["issued_at"]).days) if old["due_at"] and old["issued_at"] else 30,
        actor=actor,
        replaces=old["id"],
    )
    await _void(actor, old, f"Replaced by {format_invoice_number(new['number'])}.", now)
    return new


async def get_invoice(actor: Actor, invoice_id: int) -> dict[str, Any]:
    """An invoice with its "lines", "seller" (name, profile) and "buyer" (name,
    billing address); NotFound outside the actor's wing."""
    invoice = await Invoice.select().where(Invoice.id == invoice_id).first()
    if invoice is None or not may_act_on(actor, invoice["company_path"]):
        raise NotFound("No such invoice.")
    invoice["lines"] = (
        await InvoiceLine.select().where(InvoiceLine.invoice == invoice_id).order_by(InvoiceLine.position)
    )
    seller = await Company.select(Company.id, Company.name).where(Company.id == invoice["partner"]).first()
    buyer = await Company.select(Company.id, Company.name).where(Company.id == invoice["company"]).first()
    assert seller is not None and buyer is not None, "an invoice's companies are foreign keys"
    account = (
        await BillingAccount.select(
            BillingAccount.billing_name, BillingAccount.billing_email, BillingAccount.address, BillingAccount.country
        )
        .where(BillingAccount.company == invoice["company"])
        .first()
    )
    invoice["seller"] = seller
    invoice["buyer"] = {**buyer, **(account or {"billing_name": "", "billing_email": "", "address": "", "country": ""})}
    invoice["label"] = format_invoice_number(invoice["number"]) if invoice["number"] is not None else "Draft"
    if invoice["replaces"] is not None:
        replaced = await Invoice.select(Invoice.number).where(Invoice.id == invoice["replaces"]).first()
        invoice["replaces_label"] = format_invoice_number(replaced["number"]) if replaced else None
    replaced_by = await Invoice.select(Invoice.id, Invoice.number).where(Invoice.replaces == invoice_id).first()
    invoice["replaced_by"] = (
        {"id": replaced_by["id"], "label": format_invoice_number(replaced_by["number"])} if replaced_by else None
    )
    return invoice


# --- Lists: the partner's invoices under its wing, a customer's own ----------------

INVOICE_FILTERS = FilterSet(
    Filter("status", "Status", "select", one_of(INVOICE_STATUSES), lambda v: Invoice.status == v),
    Filter("customer", "Customer", "select", as_int, lambda v: Invoice.company == v),
    Filter("kind", "Kind", "select", one_of(KINDS), lambda v: Invoice.kind == v),
    Filter("issued_from", "Issued from", "date", as_date, lambda v: Invoice.issued_at >= day_start(v)),
    Filter("issued_to", "Issued until", "date", as_date, lambda v: Invoice.issued_at < day_end(v)),
)

_LIST_COLUMNS = (
    *Invoice.all_columns(exclude=[Invoice.idempotency_key]),
    Invoice.company.name.as_alias("company_name"),
    Invoice.partner.name.as_alias("seller_name"),
)


def _labelled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["label"] = format_invoice_number(row["number"]) if row["number"] is not None else "Draft"
    return rows


def invoices_keyset(actor: Actor, secret: bytes, customer: int | None = None) -> Keyset:
    """The invoice lists' order: the newest made first, then the newest id (a draft
    has no issue date yet); its cursors are good in the actor's wing, on the list
    of the same customer (or of all), only."""
    return Keyset(Invoice.created_at, Invoice.id, secret, scope=f"invoices:{actor.company_path}:{customer or ''}")


def _list_query(actor: Actor, filters: Mapping[str, Any]) -> tuple[Combinable, Callable[[], Select[Any]]]:
    where = INVOICE_FILTERS.where(filters, under_wing(actor, Invoice.company_path))
    return where, lambda: Invoice.select(*_LIST_COLUMNS).where(where)


async def list_invoices(
    actor: Actor, filters: Mapping[str, Any], cursor: str | None, secret: bytes
) -> KeysetPage[dict[str, Any]]:
    """Invoices of the companies under the actor's wing (a customer manager: its
    own company's), newest first, narrowed by the filters (INVOICE_FILTERS values),
    a page from `cursor` (signed with `secret`; edited or another list's: the first page)."""
    where, query = _list_query(actor, filters)
    walk = invoices_keyset(actor, secret, filters.get("customer"))
    found = await walk.page(query, await Invoice.count().where(where), walk.decode(cursor))
    _labelled(found.items)
    return found


async def iter_invoices(
    actor: Actor, filters: Mapping[str, Any], chunk: int = 2000
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every invoice `list_invoices` would show, in its order, `chunk` rows at a
    time, for the CSV download."""
    _, query = _list_query(actor, filters)
    async for rows in invoices_keyset(actor, b"").walk(query, chunk):
        yield _labelled(rows)


async def filter_choices(actor: Actor, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The options of the "Add Filter" selects among `names`: customers that have invoices, statuses, kinds."""
    names = set(names)
    choices: dict[str, list[dict[str, Any]]] = {}
    if "customer" in names:
        invoiced = Invoice.select(Invoice.company).where(under_wing(actor, Invoice.company_path)).distinct()
        choices["customer"] = (
            await Company.select(Company.id, Company.name).where(Company.id.is_in(invoiced)).order_by(Company.name)
        )
    if "status" in names:
        choices["status"] = [{"id": status, "name": status.capitalize()} for status in INVOICE_STATUSES]
    if "kind" in names:
        choices["kind"] = [{"id": kind, "name": KIND_LABELS[kind]} for kind in KINDS]
    return choices
