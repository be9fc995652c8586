"""What a purchase, a change or a renewal costs: the lines an invoice will carry,
worked out once here and shown before anything is confirmed.

A change's lines say what they pay for in their code ("change:<item>:<count>"),
so that recording the payment later (partner staff, days after) applies exactly
what was quoted and paid, whatever changed in between."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.domain.access import Actor, get_company, may_act_on
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import money, profiles, provision_claims
from portal.domain.billing.invoices import Line, Totals, format_invoice_number, totals

# The quote's price as its form sends it back, and its check: callers take them from here.
from portal.domain.billing.invoices import Quoted as Quoted
from portal.domain.billing.invoices import check_price as check_price
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import CompanyKind
from portal.tables.billing import METHODS, Invoice, InvoiceLine, InvoiceStatus, Subscription, SubscriptionStatus

LIVE = (SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE)
MAX_EXTRA_USERS = 100_000
MAX_READ_ONLY_USERS = 10_000
CHANGE_PREFIX = "change:"


@dataclass(frozen=True)
class Purchase:
    tier: str
    extra_users: int
    read_only_users: int
    addons: tuple[str, ...]
    method: str  # "online" | "invoice"


@dataclass(frozen=True)
class Quote:
    lines: tuple[Line, ...]
    totals: Totals
    term_start: datetime | None
    term_end: datetime | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class ChangeItem:
    """What one line of a change invoice pays for: a tier to move to, or users to add."""

    code: str  # a tier's code, STANDARD_USER or READ_ONLY_USER
    count: int  # users added (1 for a tier)


def change_code(item_code: str, count: int) -> str:
    return f"{CHANGE_PREFIX}{item_code}:{count}"


def parse_change_code(code: str) -> ChangeItem | None:
    if not code.startswith(CHANGE_PREFIX):
        return None
    item_code, _, count = code[len(CHANGE_PREFIX) :].rpartition(":")
    return ChangeItem(item_code, int(count))


def format_day(moment: datetime) -> str:
    """ "23 Nov 2027", as every page writes a day (the templates' `day` filter)."""
    return moment.strftime("%d %b %Y")


def refuse_read_only(actor: Actor) -> None:
    """The web refuses every POST of a read-only manager; the domain refuses too,
    so a job or a future handler cannot forget it."""
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change anything.")


def _line(code: str, description: str, quantity: int, unit_cents: int) -> Line:
    return Line(code=code, description=description, quantity=quantity, unit_cents=unit_cents)


def _totals(lines: tuple[Line, ...], profile: dict[str, Any]) -> Totals:
    return totals(lines, profile["tax_rate_bp"], profile["currency"])


def _count(value: object, field: str, most: int, errors: dict[str, str]) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
        errors[field] = f"Enter a whole number from 0 to {most:,}."
        return 0
    return value


def _by_code(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["code"]: row for row in items}


def _for_sale(items: dict[str, dict[str, Any]], code: str) -> dict[str, Any] | None:
    row = items.get(code)
    return row if row is not None and row["active"] else None


def _users_line(item: dict[str, Any], count: int, currency: str) -> Line:
    per_year = billing_catalogue.yearly_cents(item)
    per = f"12 months × {money.format_money(item['price_cents'], currency)}" if item["period"] == "month" else "a year"
    return _line(item["code"], f"{item['name']}, {per}", count, per_year)


def term_lines(
    items: dict[str, dict[str, Any]], tier: dict[str, Any], extra_users: int, read_only_users: int, currency: str
) -> list[Line]:
    """A whole term of a tier and its user credits (a purchase, a renewal)."""
    lines = [
        _line(
            tier["code"],
            f"{tier['name']} annual license, {tier['included_users']} standard users included",
            1,
            tier["price_cents"],
        )
    ]
    for code, count in (
        (billing_catalogue.STANDARD_USER, extra_users),
        (billing_catalogue.READ_ONLY_USER, read_only_users),
    ):
        if count:
            item = items.get(code)
            if item is None:
                raise ValidationFailed({code: "That item is not for sale."})
            lines.append(_users_line(item, count, currency))
    return lines


@dataclass(frozen=True)
class Billed:
    """The term an invoice of a whole term (a purchase, a renewal) bills, read back from
    its lines' codes: what paying it provisions, whatever the subscription says by then."""

    tier: str
    extra_users: int
    read_only_users: int


def billed_term(lines: Iterable[Mapping[str, Any]]) -> Billed | None:
    """The inverse of term_lines; None for lines without a tier."""
    tier, counts = None, {billing_catalogue.STANDARD_USER: 0, billing_catalogue.READ_ONLY_USER: 0}
    for line in lines:
        if line["code"] in counts:
            counts[line["code"]] += int(line["quantity"])
        elif line["code"] in billing_catalogue.TIERS:
            tier = line["code"]
    if tier is None:
        return None
    return Billed(tier, counts[billing_catalogue.STANDARD_USER], counts[billing_catalogue.READ_ONLY_USER])


async def billed_terms(invoice_ids: Iterable[int]) -> dict[int, Billed]:
    """billed_term of many invoices in one query, by invoice id (those with a tier line)."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return {}
    by_invoice: dict[int, list[dict[str, Any]]] = {}
    for line in await InvoiceLine.select(InvoiceLine.invoice, InvoiceLine.code, InvoiceLine.quantity).where(
        InvoiceLine.invoice.is_in(ids)
    ):
        by_invoice.setdefault(line["invoice"], []).append(line)
    found = {invoice: billed_term(lines) for invoice, lines in by_invoice.items()}
    return {invoice: billed for invoice, billed in found.items() if billed is not None}


async def quote_purchase(actor: Actor, company_id: int, purchase: Purchase, now: datetime) -> Quote:
    company = await get_company(actor, company_id)
    if company["kind"] != CompanyKind.CUSTOMER:
        raise NotFound("No such company.")
    seller = await billing_catalogue.seller_of(company["id"])
    profile = await profiles.profile(seller["id"])
    items = _by_code(await billing_catalogue.items(seller["id"]))
    errors: dict[str, str] = {}
    tier = _for_sale(items, purchase.tier)
    if tier is None or tier["kind"] != "tier":
        errors["tier"] = "Choose Lite or Pro."
    extra = _count(purchase.extra_users, "extra_users", MAX_EXTRA_USERS, errors)
    read_only = _count(purchase.read_only_users, "read_only_users", MAX_READ_ONLY_USERS, errors)
    for code, count, field in (
        (billing_catalogue.STANDARD_USER, extra, "extra_users"),
        (billing_catalogue.READ_ONLY_USER, read_only, "read_only_users"),
    ):
        if count and _for_sale(items, code) is None:
            errors[field] = "These user credits are not for sale."
    addons = []
    for code in dict.fromkeys(purchase.addons):  # a double tick is one add-on
        addon = _for_sale(items, code)
        if addon is None or addon["kind"] != "addon":
            errors["addons"] = "One of the add-ons is not for sale."
        else:
            addons.append(addon)
    if purchase.method not in METHODS:
        errors["method"] = "Choose Pay Online or Pay by Invoice."
    if tier is not None and tier["included_users"] + extra < 1:
        errors["extra_users"] = "A license needs at least one standard user."
    if errors or tier is None:
        raise ValidationFailed(errors)
    lines = term_lines(items, tier, extra, read_only, profile["currency"])
    lines += [_line(a["code"], a["name"], 1, a["price_cents"]) for a in addons]
    seats = tier["included_users"] + extra
    notes = [f"{seats} standard users for 12 months."]
    if purchase.method == "online":
        start, end = now, money.term_end(now)
        notes.append(f"Renews automatically on {format_day(end)} for the same number of users unless cancelled.")
    else:
        start, end = None, None
        notes.append("The 12 months start when the invoice is paid.")
    return Quote(tuple(lines), _totals(tuple(lines), profile), start, end, tuple(notes))


async def load_subscription(actor: Actor, subscription_id: int) -> dict[str, Any]:
    """The subscription, or NotFound outside the actor's wing."""
    row = await Subscription.select().where(Subscription.id == subscription_id).first()
    if row is None or not may_act_on(actor, row["company_path"]):
        raise NotFound("No such subscription.")
    return row


async def check_changeable(subscription: dict[str, Any], now: datetime) -> None:
    if (
        subscription["status"] != SubscriptionStatus.ACTIVE
        or subscription["term_end"] is None
        or subscription["term_end"] <= now
    ):
        raise ValidationFailed({"subscription": "Only a running subscription can change; this one is not running."})
    # One change at a time: a second one, worked out from the plan as it was before
    # the first is applied, would bill and provision the same users again. The first
    # is open until paid (or void) and then until provisioned, which the charge's
    # request does just after the payment, or the billing tick after a crash.
    open_ = await Invoice.raw(_OPEN_CHANGE_SQL, subscription["id"])
    if open_:
        raise ValidationFailed({"subscription": _OPEN_CHANGE[open_[0]["status"]]})


_OPEN_CHANGE_SQL = (
    "SELECT i.status FROM invoice AS i WHERE i.subscription = {} AND i.kind = 'change' "
    f"AND (i.status = 'issued' OR (i.status = 'paid' AND {provision_claims.UNCLAIMED_SQL})) "
    "ORDER BY i.id LIMIT 1"
)
_OPEN_CHANGE = {
    "issued": "An earlier change is awaiting payment of its invoice; it must be paid or void first.",
    "paid": "An earlier change was just paid and is being applied: look again in a minute.",
}


@dataclass(frozen=True)
class Reissue:
    """The next term's renewal invoice, issued and unpaid, and the lines that bill the
    next term as a change leaves it: confirming the change voids it and issues these."""

    invoice: dict[str, Any]
    lines: tuple[Line, ...]
    totals: Totals


@dataclass(frozen=True)
class ChangePlan:
    """A change worked out: lines to pay now, what waits for the next term, and the
    renewal invoice to reissue (None when there is none to pay, or it bills the same)."""

    lines: tuple[Line, ...]
    next_extra_users: int | None
    next_read_only_users: int | None
    notes: tuple[str, ...]
    reissue: Reissue | None = None


async def unpaid_renewal(subscription: dict[str, Any]) -> dict[str, Any] | None:
    """The renewal invoice of the term after the running one, issued and not paid yet."""
    if subscription["term_end"] is None:
        return None
    return (
        await Invoice.select()
        .where(
            (Invoice.subscription == subscription["id"])
            & (Invoice.kind == "renewal")
            & (Invoice.status == InvoiceStatus.ISSUED)
            & (Invoice.term_start == subscription["term_end"])
        )
        .first()
    )


async def _reissue(
    subscription: dict[str, Any],
    items: dict[str, dict[str, Any]],
    tier: dict[str, Any],
    extra: int,
    read_only: int,
    profile: dict[str, Any],
) -> Reissue | None:
    old = await unpaid_renewal(subscription)
    if old is None:
        return None
    lines = tuple(term_lines(items, tier, extra, read_only, profile["currency"]))
    sums = _totals(lines, profile)
    had = await InvoiceLine.select(InvoiceLine.code, InvoiceLine.quantity, InvoiceLine.unit_cents).where(
        InvoiceLine.invoice == old["id"]
    )
    same_lines = sorted((r["code"], r["quantity"], r["unit_cents"]) for r in had) == sorted(
        (line.code, line.quantity, line.unit_cents) for line in lines
    )
    if same_lines and (old["currency"], old["total_cents"]) == (sums.currency, sums.total_cents):
        return None
    return Reissue(old, lines, sums)


@dataclass(frozen=True)
class Wanted:
    """The plan a change asks for: a tier and the user credits beyond its own."""

    tier: str
    extra_users: int
    read_only_users: int
    # Fewer users already set for the next term, kept as set (None: the next term renews these).
    next_extra_users: int | None = None
    next_read_only_users: int | None = None


# "Add users" asks for counts to add, under these names; the plan's rule names the totals.
ADDED_FIELDS = {"extra_users": "standard_users", "read_only_users": "read_only_users"}


def check_added(standard_users: object, read_only_users: object) -> tuple[int, int]:
    """The users "Add users" asks for: whole numbers, at least one of them."""
    errors: dict[str, str] = {}
    standard = _count(standard_users, "standard_users", MAX_EXTRA_USERS, errors)
    read_only = _count(read_only_users, "read_only_users", MAX_READ_ONLY_USERS, errors)
    if not errors and standard + read_only == 0:
        errors["standard_users"] = "Enter how many users to add: 1 or more."
    if errors:
        raise ValidationFailed(errors)
    return standard, read_only


def added_to(subscription: dict[str, Any], standard_users: int, read_only_users: int) -> Wanted:
    """The plan held with that many more users: the same tier, credits on top of those held.
    Fewer users already set for the next term stay set, with those added now on top:
    adding users now does not undo a reduction asked for earlier."""
    next_extra, next_read_only = subscription["next_extra_users"], subscription["next_read_only_users"]
    return Wanted(
        subscription["tier"],
        subscription["extra_users"] + standard_users,
        subscription["read_only_users"] + read_only_users,
        None if next_extra is None else next_extra + standard_users,
        None if next_read_only is None else next_read_only + read_only_users,
    )


async def plan_change(
    subscription: dict[str, Any],
    *,
    tier: str,
    extra_users: int,
    read_only_users: int,
    now: datetime,
    field_of: Mapping[str, str] | None = None,
    next_term: Mapping[str, int | None] | None = None,
) -> tuple[ChangePlan, dict[str, Any]]:
    """The rule of a change, once: more (a higher tier, added users) is charged
    pro rata for the days left of the term; fewer takes effect at the next term;
    a lower tier is refused (nowhere to keep it until the term ends). `field_of`
    renames the fields a refusal names, for a form that asks under other names.
    `next_term`: fewer users for the next term than `extra_users`/`read_only_users`,
    by field, kept (None for a field: the next term renews what this change leaves)."""
    try:
        return await _plan_change(
            subscription,
            tier=tier,
            extra_users=extra_users,
            read_only_users=read_only_users,
            now=now,
            next_term=next_term or {},
        )
    except ValidationFailed as refused:
        if not field_of:
            raise
        raise ValidationFailed({field_of.get(k, k): v for k, v in refused.errors.items()}) from None


async def _plan_change(
    subscription: dict[str, Any],
    *,
    tier: str,
    extra_users: int,
    read_only_users: int,
    now: datetime,
    next_term: Mapping[str, int | None],
) -> tuple[ChangePlan, dict[str, Any]]:
    profile = await profiles.profile(subscription["partner"])
    items = _by_code(await billing_catalogue.items(subscription["partner"]))
    errors: dict[str, str] = {}
    extra = _count(extra_users, "extra_users", MAX_EXTRA_USERS, errors)
    read_only = _count(read_only_users, "read_only_users", MAX_READ_ONLY_USERS, errors)
    old_tier = items.get(subscription["tier"])
    new_tier = items.get(tier) if tier == subscription["tier"] else _for_sale(items, tier)
    if new_tier is None or new_tier["kind"] != "tier" or old_tier is None:
        errors["tier"] = "Choose Lite or Pro."
    elif new_tier["price_cents"] < old_tier["price_cents"]:
        errors["tier"] = (
            f"{old_tier['name']} cannot move down to {new_tier['name']} during a term: "
            "cancel, and buy it when this term ends."
        )
    if errors or new_tier is None or old_tier is None:
        raise ValidationFailed(errors)
    start, end = subscription["term_start"], subscription["term_end"]
    left, total = money.days_left(end, now), money.days_in_term(start, end)
    days = f"{left} of {total} days left"
    lines: list[Line] = []
    if new_tier["code"] != old_tier["code"]:
        amount = money.prorate(new_tier["price_cents"] - old_tier["price_cents"], start, end, now)
        lines.append(
            _line(
                change_code(new_tier["code"], 1), f"Upgrade {old_tier['name']} → {new_tier['name']}, {days}", 1, amount
            )
        )
    notes: list[str] = []
    next_values: dict[str, int | None] = {}
    for code, field, wanted in (
        (billing_catalogue.STANDARD_USER, "extra_users", extra),
        (billing_catalogue.READ_ONLY_USER, "read_only_users", read_only),
    ):
        held = subscription[field]
        item = items.get(code)
        next_values[field] = None
        if wanted > held:
            if item is None or not item["active"]:
                raise ValidationFailed({field: "These user credits are not for sale."})
            added = wanted - held
            amount = money.prorate(added * billing_catalogue.yearly_cents(item), start, end, now)
            lines.append(_line(change_code(code, added), f"{added} × {item['name']}, {days}", 1, amount))
        elif wanted < held:
            next_values[field] = wanted
            name = item["name"] if item else code
            notes.append(f"From {format_day(end)}: {wanted} × {name} (now {held}); nothing to pay now.")
        kept = next_term.get(field)
        if kept is not None and kept < wanted:
            next_values[field] = kept
            name = item["name"] if item else code
            notes.append(f"From {format_day(end)}: {kept} × {name}, as set before with those added now.")
    if lines:
        notes.insert(0, f"Charged for the {left} days left of the term, until {format_day(end)}.")
    if not lines and not notes:
        raise ValidationFailed({"subscription": "Nothing would change."})
    # The next term's invoice, if already issued, must bill the next term as this change leaves it.
    renewed = {
        f: wanted if next_values[f] is None else next_values[f]
        for f, wanted in (("extra_users", extra), ("read_only_users", read_only))
    }
    reissue = await _reissue(
        subscription, items, new_tier, renewed["extra_users"] or 0, renewed["read_only_users"] or 0, profile
    )
    if reissue is not None:
        old = reissue.invoice
        notes.append(
            f"Confirming voids renewal invoice {format_invoice_number(old['number'])} "
            f"({money.format_money(old['total_cents'], old['currency'])}) and issues one for the next term "
            f"as changed: {money.format_money(reissue.totals.total_cents, reissue.totals.currency)}."
        )
    plan = ChangePlan(tuple(lines), next_values["extra_users"], next_values["read_only_users"], tuple(notes), reissue)
    return plan, profile


async def quote_change(
    actor: Actor, subscription_id: int, *, tier: str, extra_users: int, read_only_users: int, now: datetime
) -> Quote:
    """More (upgrade, added users): pro rata to the term end; fewer: 0 now, note "From <date>: N users"."""
    subscription = await load_subscription(actor, subscription_id)
    await check_changeable(subscription, now)
    plan, profile = await plan_change(
        subscription, tier=tier, extra_users=extra_users, read_only_users=read_only_users, now=now
    )
    return Quote(plan.lines, _totals(plan.lines, profile), now, subscription["term_end"], plan.notes)


async def quote_add_users(
    actor: Actor, subscription_id: int, *, standard_users: int, read_only_users: int, now: datetime
) -> Quote:
    """ "Add users": more user credits on the plan held, pro rata to the term's end."""
    added = check_added(standard_users, read_only_users)
    subscription = await load_subscription(actor, subscription_id)
    await check_changeable(subscription, now)
    wanted = added_to(subscription, *added)
    plan, profile = await plan_change(
        subscription,
        tier=wanted.tier,
        extra_users=wanted.extra_users,
        read_only_users=wanted.read_only_users,
        now=now,
        field_of=ADDED_FIELDS,
        next_term={"extra_users": wanted.next_extra_users, "read_only_users": wanted.next_read_only_users},
    )
    return Quote(plan.lines, _totals(plan.lines, profile), now, subscription["term_end"], plan.notes)


async def renewal_lines(subscription: dict[str, Any]) -> tuple[list[Line], dict[str, Any]]:
    """The next term of a subscription, for the same users unless fewer were asked
    for (next_*): tier and user credits at the seller's prices now; add-ons were
    bought once. Returns the lines and the seller's profile."""
    profile = await profiles.profile(subscription["partner"])
    items = _by_code(await billing_catalogue.items(subscription["partner"]))
    tier = items.get(subscription["tier"])
    if tier is None:
        raise ValidationFailed({"tier": "This subscription's tier is no longer in the catalogue."})
    extra = subscription["next_extra_users"]
    read_only = subscription["next_read_only_users"]
    lines = term_lines(
        items,
        tier,
        subscription["extra_users"] if extra is None else extra,
        subscription["read_only_users"] if read_only is None else read_only,
        profile["currency"],
    )
    return lines, profile
