"""A customer's license in one shape, the same on its Licenses page, its Billing
page and its partner's page of it: the plan, the seats bought, held and free,
the term's end, how it renews and what the next term costs.

How it renews follows what will actually happen:
- a live subscription: online and not cancelled renews itself on its term end;
  by invoice, when the renewal invoice is paid; cancelled, it ends then;
  pending, it starts with its first payment;
- no subscription ever (automatic renewal leaves out a customer that had one):
  the partner's automatic renewal setting, or the partner renews when asked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.domain.access import Actor, get_company
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import money, quotes
from portal.domain.billing.invoices import totals
from portal.domain.errors import ValidationFailed
from portal.domain.licences import auto_renewal
from portal.domain.licences.plans import plan_label
from portal.tables import Company, LicenceBatch
from portal.tables.billing import Subscription

HOW = ("online", "invoice", "cancelled", "pending", "automatic", "approval", "partner", "none")


@dataclass(frozen=True)
class LicenceSummary:
    plan: str | None  # the tier's name ("Pro"), else the running batches' product; None: no license
    seats: int  # bought: every seat of the running batches
    held: int
    free: int
    ends_at: datetime | None  # the term's end, or the next batch end when they differ
    several_ends: bool  # running batches end on different days
    how: str  # one of HOW
    renews: str  # how it renews, in a sentence
    next_price: str | None  # the next term's total, where a subscription renews
    label: str | None = None  # the plan as a subscription's batches are named


# Per batch, not summed in SQL: SQLite hands an aggregate of timestamps back as text.
# A customer has a few running batches.
_RUNNING_SQL = (
    "SELECT product.name AS product, b.seats, b.allocated, b.ends_at "
    "FROM licence_batch AS b JOIN product ON product.id = b.product "
    "WHERE b.company = {} AND b.starts_at <= {} AND b.ends_at > {} ORDER BY b.seats DESC, b.id"
)


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


async def licence_summary(actor: Actor, company_id: int, now: datetime) -> LicenceSummary:
    """The customer's license as one summary (another tenant's company: NotFound)."""
    company = await get_company(actor, company_id)
    running = await LicenceBatch.raw(_RUNNING_SQL, company["id"], now, now)
    seats = sum(r["seats"] for r in running)
    held = sum(r["allocated"] for r in running)
    first_end = min((r["ends_at"] for r in running), default=None)
    last_end = max((r["ends_at"] for r in running), default=None)
    subscriptions = (
        await Subscription.select()
        .where(Subscription.company == company["id"])
        .order_by(Subscription.id, ascending=False)
    )
    live = next((s for s in subscriptions if s["status"] in quotes.LIVE), None)
    # The partner who renews, and its automatic renewal setting for this customer, at once.
    seller = await Company.raw(
        "SELECT partner.name, r.mode, r.days_before FROM company AS partner "
        "LEFT JOIN auto_renewal AS r ON r.company = {} WHERE partner.id = {}",
        company["id"],
        company["parent"],
    )
    partner_name = seller[0]["name"] if seller else "your partner"
    plan = running[0]["product"] if running else None
    label, next_price = None, None
    several = first_end is not None and last_end is not None and first_end.date() != last_end.date()
    ends_at = first_end
    if live is not None:
        items = {row["code"]: row for row in await billing_catalogue.items(live["partner"])}
        tier = items.get(live["tier"])
        plan = tier["name"] if tier else live["tier"]
        label = plan_label(plan)
        how, renews = _subscription_renews(live)
        if live["term_end"] is not None:
            ends_at, several = live["term_end"], False
        if how in ("online", "invoice"):
            next_price = await _next_price(live)
    elif subscriptions or not running:
        how = "partner" if running else "none"
        renews = f"Renewed by {partner_name} when asked" if running else "No license yet"
    else:
        mode = seller[0]["mode"] if seller else None
        setting = auto_renewal.Setting(mode, seller[0]["days_before"]) if mode else auto_renewal.Setting()
        how, renews = _setting_renews(setting, partner_name)
    return LicenceSummary(plan, seats, held, seats - held, ends_at, several, how, renews, next_price, label)


def _subscription_renews(live: dict[str, Any]) -> tuple[str, str]:
    end = live["term_end"]
    if live["status"] == "pending" or end is None:
        first = "its first invoice is paid" if live["method"] == "invoice" else "its payment is made"
        return "pending", f"Starts when {first}"
    if not live["auto_renew"]:
        return "cancelled", f"Cancelled: ends {quotes.format_day(end)}"
    if live["method"] == "online":
        return "online", f"Renews automatically online on {quotes.format_day(end)}"
    return "invoice", f"Renewed by paying an invoice before {quotes.format_day(end)}"


def _setting_renews(setting: auto_renewal.Setting, partner_name: str) -> tuple[str, str]:
    days = _days(setting.days_before)
    if setting.mode == "renew":
        return "automatic", f"Renewed automatically by {partner_name} {days} before it ends"
    if setting.mode == "approve":
        return "approval", f"Needs approval: a renewal order waits for {partner_name} {days} before it ends"
    return "partner", f"Renewed by {partner_name} when asked"


async def _next_price(subscription: dict[str, Any]) -> str | None:
    """The next term at the seller's prices now, as the renewal will bill it."""
    try:
        lines, profile = await quotes.renewal_lines(subscription)
    except ValidationFailed:  # its tier left the catalogue: the partner will say
        return None
    sums = totals(lines, profile["tax_rate_bp"], profile["currency"])
    return money.format_money(sums.total_cents, sums.currency)
