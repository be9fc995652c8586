"""Request Licenses: what the form advises before a request, and the request,
which e-mails the account managers above."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal import db
from portal.domain import audit, catalogue, outbox, partner_settings
from portal.domain.access import Actor, get_company
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.licences import coterm, tabs
from portal.tables import CompanyKind, LicenceOrder, OrderStatus


async def nearest_account_managers(company: dict[str, Any]) -> tuple[int, list[str]]:
    """The managers of the nearest partner or sub-partner above that has any."""
    ancestor_ids = [int(part) for part in company["path"].strip("/").split("/")[:-1]]
    for ancestor_id in reversed(ancestor_ids):
        recipients = await outbox.managers_of(ancestor_id)
        if recipients:
            return ancestor_id, recipients
    return company["id"], []


def over_limit(quantity: int, limit: int) -> str | None:
    """Why an order of `quantity` is refused under the partner's largest order, or None."""
    if quantity <= limit:
        return None
    return (
        f"At most {_licences(limit)} in one order: the largest order your account managers accept. "
        "Ask them if you need more."
    )


@dataclass(frozen=True)
class RequestAdvice:
    """What Request Licenses shows before a request: the seats the company holds,
    the users waiting for one, the requests not yet decided, and the partner's limit."""

    company_name: str
    free: int  # free seats of running batches: an ended batch's seats are no use
    expired: int
    unlicensed: int
    pending: list[dict[str, Any]]  # requested orders: quantity, requested_at; newest first
    limit: int

    @property
    def waiting(self) -> int:
        return self.expired + self.unlicensed

    @property
    def suggested(self) -> int:
        """Enough for everyone waiting, less the seats already free; at least one."""
        return min(max(self.waiting - self.free, 1), self.limit)

    @property
    def pending_quantity(self) -> int:
        return sum(o["quantity"] for o in self.pending)

    def warnings(self) -> list[str]:
        """Why a request may be a slip: one is already waiting, or the seats held cover everyone."""
        said = []
        if len(self.pending) == 1:
            (o,) = self.pending
            said.append(
                f"{self.company_name} already has a request waiting for its account managers: "
                f"{_licences(o['quantity'])}, requested {o['requested_at']:%d %b %Y}."
            )
        elif self.pending:
            said.append(
                f"{self.company_name} already has {len(self.pending)} requests waiting for its account managers, "
                f"{_licences(self.pending_quantity)} in all."
            )
        if self.free and self.free >= self.waiting:
            seats = f"{self.free:,} free seat{'' if self.free == 1 else 's'}"
            if self.waiting:
                users = f"{self.waiting:,} user{'' if self.waiting == 1 else 's'}"
                said.append(
                    f"{self.company_name} already holds {seats}, enough for the {users} waiting "
                    "(expired or unlicensed): allocate them under Expired Licenses."
                )
            else:
                said.append(f"{self.company_name} already holds {seats}, and no user is waiting for one.")
        return said


def _licences(n: int) -> str:
    return f"{n:,} license{'' if n == 1 else 's'}"


class NeedsConfirmation(ValidationFailed):
    """The request is valid but may be a slip: nothing is written until the user
    asks again, confirmed."""

    def __init__(self, advice: RequestAdvice) -> None:
        super().__init__({"confirm": " ".join(advice.warnings())})
        self.advice = advice


async def request_advice(actor: Actor, company_id: int, now: datetime) -> RequestAdvice:
    company = await get_company(actor, company_id)
    return await _advice(company, now)


async def _advice(company: dict[str, Any], now: datetime) -> RequestAdvice:
    seats = await tabs.seats_and_waiting(company["id"], now)
    pending = (
        await LicenceOrder.select(LicenceOrder.quantity, LicenceOrder.requested_at)
        .where((LicenceOrder.company == company["id"]) & (LicenceOrder.status == OrderStatus.REQUESTED))
        .order_by(LicenceOrder.requested_at, ascending=False)
    )
    limit = (await partner_settings.for_path(company["path"])).max_order_quantity
    return RequestAdvice(company["name"], seats.free, seats.expired, seats.unlicensed, pending, limit)


async def request_order(
    actor: Actor,
    company_id: int,
    quantity: int | None,
    product_id: int | None,
    po_number: str,
    now: datetime,
    *,
    confirmed: bool = True,
    renews_batch: int | None = None,
    ends_with: str = coterm.TWELVE_MONTHS,
) -> dict[str, Any]:
    """A customer manager (or a partner manager in manage mode, or creating the
    customer) asks for `quantity` licences; the account managers above are e-mailed.

    At most the partner's largest order (partner_settings). Unless `confirmed`,
    a request that may be a slip (another one waiting, or free seats enough for
    everyone waiting) raises NeedsConfirmation and writes nothing.

    `renews_batch`: the batch of the company this order renews (the caller
    checked it is one): assigned, it continues that batch (decisions.assign_order).

    `ends_with`: coterm.END_WITH_TERM ("End with the current term") stores the end
    of the company's current term on the order, and the batch assigned ends then;
    refused while the company holds no running licenses. Otherwise 12 months from Assign."""
    company = await get_company(actor, company_id)
    errors: dict[str, str] = {}
    if company["kind"] != CompanyKind.CUSTOMER:
        raise PermissionDenied("Licenses are ordered for customer companies.")
    limit = (await partner_settings.for_path(company["path"])).max_order_quantity
    if quantity is None or quantity < 1:
        errors["quantity"] = "Enter how many licenses, 1 or more."
    elif over_limit(quantity, limit):
        errors["quantity"] = over_limit(quantity, limit) or ""
    product = await catalogue.product(product_id) if product_id else await catalogue.product_by_code(catalogue.PREMIUM)
    if product is None:
        errors["product_id"] = "Choose a license type."
    po_number = po_number.strip()
    if len(po_number) > 64:
        errors["po_number"] = "Use at most 64 characters."
    coterm_ends_at = None
    if ends_with not in coterm.CHOICES:
        errors["ends_with"] = "Choose when the licenses end."
    elif ends_with == coterm.END_WITH_TERM and renews_batch is None:
        coterm_ends_at = await coterm.current_term_end(company["id"], now)
        if coterm_ends_at is None:
            errors["ends_with"] = f"{company['name']} holds no running licenses to end with: choose 12 months from now."
    if errors or product is None:
        raise ValidationFailed(errors)
    if not confirmed:
        advice = await _advice(company, now)
        if advice.warnings():
            raise NeedsConfirmation(advice)

    async with db.write_transaction():
        order = (
            await LicenceOrder.insert(
                LicenceOrder(
                    company=company["id"],
                    # The database sets it too (a trigger); given here so the
                    # returned row has it on SQLite, whose RETURNING precedes AFTER triggers.
                    company_path=company["path"],
                    product=product["id"],
                    quantity=quantity,
                    status=OrderStatus.REQUESTED,
                    po_number=po_number or None,
                    requested_by=actor.user_id,
                    requested_at=now,
                    renews_batch=renews_batch,
                    coterm_ends_at=coterm_ends_at,
                )
            ).returning(*LicenceOrder.all_columns())
        )[0]
        partner_id, recipients = await nearest_account_managers(company)
        await queue_kind(
            "order_requested",
            company["id"],
            recipients,
            {
                "company_id": company["id"],
                "company_name": company["name"],
                "quantity": quantity,
                "product_name": product["name"],
                "requested_by": actor.name,
                "po_number": po_number or None,
                "renewal": bool(renews_batch),
                "renews_ending": None,
                "coterm_ends_at": coterm_ends_at,
            },
            now,
            dedupe=f"order_requested:{order['id']}",
        )
        await audit.record(
            actor,
            "order.request",
            company["id"],
            now,
            {"order": order["id"], "quantity": quantity, "product": product["code"]}
            | ({"renews_batch": renews_batch} if renews_batch else {})
            | ({"ends_with_term": coterm_ends_at.isoformat()} if coterm_ends_at else {}),
        )
    return order
