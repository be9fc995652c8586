"""/api/v1 for an MSP's own scripts and PSA sync: a partner's API key (Bearer),
its scopes, per-key rate limits, cursor pagination, the same tenant rules as the
pages (portal.domain.partner_api), errors as {"status_code", "detail"} (portal/web/errors.py).
Every answer a route can give is declared, so the OpenAPI document at /schema
tells the whole truth (schemathesis checks it in the tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from litestar import Request, Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, Parameter, QueryParameter
from msgspec import Meta, Struct

from portal import db
from portal.domain.catalogue import PREMIUM, product_by_code
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.orders import decisions, requests
from portal.domain.partner_api import cursor, reads
from portal.domain.partner_api.keys import KeyHolder, holder_of
from portal.domain.partner_api.once import Once
from portal.settings import Settings


@dataclass
class ApiError:
    status_code: int
    detail: str
    request_id: str | None = None


@dataclass
class Company:
    id: int
    name: str
    kind: str
    """partner, sub_partner or customer"""
    parent_id: int | None
    created_at: datetime


@dataclass
class User:
    id: int
    company_id: int
    email: str
    name: str
    role: str
    active: bool
    status: str
    """active, expiring, expired, unlicensed or deactivated"""
    licence_ends_at: datetime | None
    created_at: datetime


@dataclass
class Order:
    id: int
    company_id: int
    product: str
    quantity: int
    status: str
    """requested, assigned, declined or cancelled"""
    po_number: str | None
    requested_at: datetime
    decided_at: datetime | None
    decline_reason: str | None
    renews_batch_id: int | None
    batch_id: int | None


@dataclass
class Batch:
    id: int
    company_id: int
    order_id: int
    product: str
    seats: int
    allocated: int
    starts_at: datetime
    ends_at: datetime


@dataclass
class Allocation:
    id: int
    batch_id: int
    user_id: int
    company_id: int
    starts_at: datetime
    ends_at: datetime
    released_at: datetime | None


@dataclass
class Invoice:
    id: int
    company_id: int
    seller_id: int
    number: int | None
    kind: str
    status: str
    """draft, issued, paid or void"""
    currency: str
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    issued_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    payment_method: str | None
    payment_reference: str | None
    voided_at: datetime | None


@dataclass
class Payment:
    id: int
    invoice_id: int
    company_id: int
    attempt: int
    amount_cents: int
    currency: str
    status: str
    """succeeded or declined"""
    reference: str | None
    decline_reason: str | None
    attempted_at: datetime


@dataclass
class CompanyPage:
    data: list[Company]
    next_cursor: str | None = None


@dataclass
class UserPage:
    data: list[User]
    next_cursor: str | None = None


@dataclass
class OrderPage:
    data: list[Order]
    next_cursor: str | None = None


@dataclass
class BatchPage:
    data: list[Batch]
    next_cursor: str | None = None


@dataclass
class AllocationPage:
    data: list[Allocation]
    next_cursor: str | None = None


@dataclass
class InvoicePage:
    data: list[Invoice]
    next_cursor: str | None = None


@dataclass
class PaymentPage:
    data: list[Payment]
    next_cursor: str | None = None


# Text a person could type: no control characters but tab and line breaks (as forms take it).
TYPED = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


class OrderRequest(Struct):
    company_id: Annotated[int, Meta(ge=1, le=2_147_483_647)]
    quantity: Annotated[int, Meta(ge=1, le=1_000_000)]
    product: Annotated[str, Meta(max_length=40, pattern=TYPED)] = PREMIUM
    po_number: Annotated[str, Meta(max_length=64, pattern=TYPED)] = ""


class Decline(Struct):
    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=TYPED)]


@dataclass
class ApiLimits:
    """Requests a key may make a minute, counted in Redis (every web process) or here."""

    per_minute: int
    storage: Storage = field(default_factory=MemoryStorage)

    @classmethod
    def of(cls, settings: Settings) -> ApiLimits:
        if settings.redis_url:
            return cls(
                settings.api_requests_per_minute, RedisStorage("async+" + settings.redis_url, implementation="redispy")
            )
        return cls(settings.api_requests_per_minute)


def error_spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ApiError, description=description)


KEY_ERRORS = {
    401: error_spec("No API key, or a key that is unknown or revoked."),
    403: error_spec("The key lacks the scope this needs."),
    429: error_spec("Too many requests for this key this minute; Retry-After says when to try again."),
}
NOT_FOUND = {404: error_spec("Nothing with this id under the key's partner.")}
REFUSED = {
    400: error_spec("The body or a parameter is malformed (the detail names it); nothing was changed."),
    409: error_spec("A rule refuses it as things stand (the detail says which); nothing was changed."),
}
ID = Annotated[int, Parameter(ge=1, le=2_147_483_647)]
LIMIT = Annotated[int | None, Parameter(ge=1, le=cursor.MAX_LIMIT, description="rows a page, 50 unless given")]
CURSOR = Annotated[
    str | None,
    QueryParameter(
        name="cursor",
        max_length=200,
        pattern="^[A-Za-z0-9_-]*$",
        description="next_cursor of the page before; none at first (one not made here starts again)",
    ),
]
FILTER_ID = Annotated[int | None, Parameter(ge=1, le=2_147_483_647)]


async def key_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The key, checked and counted before anything of the request is read: a
    request without a valid key answers 401 whatever its body, and one over the
    limit 429."""
    scheme, _, key = connection.headers.get("authorization", "").partition(" ")
    holder = await holder_of(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    if holder is None:
        raise NotAuthorizedException(
            "A valid partner API key is needed: Authorization: Bearer <key>.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    limits: ApiLimits = connection.app.state.api_limits
    item = RateLimitItemPerMinute(limits.per_minute)
    limiter = MovingWindowRateLimiter(limits.storage)
    if not await limiter.hit(item, "api-key", str(holder.key_id)):
        reset = (await limiter.get_window_stats(item, "api-key", str(holder.key_id))).reset_time
        wait = max(1, int(reset - utcnow().timestamp()) + 1)
        raise HTTPException(
            status_code=429, detail="Too many requests for this key; wait, then try again.",
            headers={"Retry-After": str(wait)},
        )  # fmt: skip
    connection.state.api_key_holder = holder


async def provide_holder(request: Request) -> KeyHolder:
    return request.state.api_key_holder


async def _list(
    request: Request, holder: KeyHolder, resource: str, after: str | None, limit: int | None, **filters: Any
) -> tuple[list[dict], str | None]:
    holder.require("billing" if resource in ("invoices", "payments") else "read")
    secret = request.app.state.settings.secret_key
    data, more = await reads.page(
        holder.actor, resource, cursor.decode(after, secret), cursor.limit_of(limit), filters, utcnow()
    )
    return data, cursor.encode(data[-1]["id"], secret) if more and data else None


async def _one(holder: KeyHolder, resource: str, row_id: int) -> dict:
    holder.require("billing" if resource in ("invoices", "payments") else "read")
    return await _order_or(holder, resource, row_id)


@asynccontextmanager
async def _rules() -> AsyncIterator[None]:
    """A rule's refusal of a well-formed request (an order assigned already, more
    seats than the partner allows) is a 409, the malformed ones being 400s."""
    try:
        yield
    except ValidationFailed as refused:
        raise HTTPException(status_code=409, detail=" ".join(refused.errors.values()) or str(refused)) from None


async def _order_or(holder: KeyHolder, resource: str, row_id: int) -> dict:
    """A row as the API shows it; after a write, the order it wrote, whatever the key may read."""
    return await reads.one(holder.actor, resource, row_id, utcnow())


LIST: dict[str, Any] = {"security": [{"partnerKey": []}], "responses": KEY_ERRORS}
ONE: dict[str, Any] = {"security": [{"partnerKey": []}], "responses": KEY_ERRORS | NOT_FOUND}
WRITE: dict[str, Any] = {"security": [{"partnerKey": []}], "responses": KEY_ERRORS | NOT_FOUND | REFUSED}


@get("/companies", tags=["companies"], summary="Companies under the key's partner, by id", **LIST)
async def list_companies(request: Request, holder: KeyHolder, after: CURSOR = None, limit: LIMIT = None) -> CompanyPage:
    data, next_cursor = await _list(request, holder, "companies", after, limit)
    return CompanyPage([Company(**row) for row in data], next_cursor)


@get("/companies/{company_id:int}", tags=["companies"], summary="One company", **ONE)
async def get_company(holder: KeyHolder, company_id: ID) -> Company:
    return Company(**await _one(holder, "companies", company_id))


@get("/users", tags=["users"], summary="Users (managers and learners) with their license status", **LIST)
async def list_users(
    request: Request, holder: KeyHolder, after: CURSOR = None, limit: LIMIT = None, company_id: FILTER_ID = None
) -> UserPage:
    data, next_cursor = await _list(request, holder, "users", after, limit, company_id=company_id)
    return UserPage([User(**row) for row in data], next_cursor)


@get("/users/{user_id:int}", tags=["users"], summary="One user", **ONE)
async def get_user(holder: KeyHolder, user_id: ID) -> User:
    return User(**await _one(holder, "users", user_id))


ORDER_STATUS = Annotated[str | None, Parameter(pattern="^(requested|assigned|declined|cancelled)$")]


@get("/orders", tags=["orders"], summary="License orders", **LIST)
async def list_orders(
    request: Request,
    holder: KeyHolder,
    after: CURSOR = None,
    limit: LIMIT = None,
    company_id: FILTER_ID = None,
    status: ORDER_STATUS = None,
) -> OrderPage:
    data, next_cursor = await _list(request, holder, "orders", after, limit, company_id=company_id, status=status)
    return OrderPage([Order(**row) for row in data], next_cursor)


@get("/orders/{order_id:int}", tags=["orders"], summary="One order", **ONE)
async def get_order(holder: KeyHolder, order_id: ID) -> Order:
    return Order(**await _one(holder, "orders", order_id))


IDEMPOTENCY_KEY = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        max_length=100,
        description="The same key again (within the same API key, for the same request) answers what the first "
        "one did, and does nothing more; a key used for another request answers 409",
    ),
]


def _once(holder: KeyHolder, idempotency_key: str | None, request: str, order_id: int | None = None) -> Once | None:
    return Once(holder.key_id, holder.actor.user_id, idempotency_key, request, order_id) if idempotency_key else None


async def _answered_before(holder: KeyHolder, once: Once) -> Order:
    """What the first request with the key answered, as the order stands now."""
    return Order(**await _order_or(holder, "orders", await once.earlier_order()))


@post("/orders", tags=["orders"], summary="Request licenses for a customer", status_code=201, **WRITE)
async def request_order(holder: KeyHolder, data: OrderRequest, idempotency_key: IDEMPOTENCY_KEY = None) -> Order:
    holder.require("orders")
    now = utcnow()
    once = _once(holder, idempotency_key, "request")
    async with _rules(), db.write_transaction():
        if once and not await once.take(now):
            return await _answered_before(holder, once)
        try:
            product = await product_by_code(data.product)
        except LookupError:
            raise ValidationFailed({"product": f"No product {data.product!r}: use {PREMIUM!r}."}) from None
        order = await requests.request_order(
            holder.actor, data.company_id, data.quantity, product["id"], data.po_number, now
        )
        if once:
            await once.done(order["id"], order["company"])
    return Order(**await _order_or(holder, "orders", order["id"]))


@post(
    "/orders/{order_id:int}/assign",
    tags=["orders"],
    summary="Assign an order: its 12 months start",
    status_code=200,
    **WRITE,
)
async def assign_order(holder: KeyHolder, order_id: ID, idempotency_key: IDEMPOTENCY_KEY = None) -> Order:
    holder.require("orders")
    now = utcnow()
    once = _once(holder, idempotency_key, "assign", order_id)
    async with _rules(), db.write_transaction():
        if once and not await once.take(now):
            return await _answered_before(holder, once)
        batch = await decisions.assign_order(holder.actor, order_id, now)
        if once:
            await once.done(order_id, batch["company"])
    return Order(**await _order_or(holder, "orders", order_id))


@post(
    "/orders/{order_id:int}/decline", tags=["orders"], summary="Decline an order, saying why", status_code=200, **WRITE
)
async def decline_order(
    holder: KeyHolder, order_id: ID, data: Decline, idempotency_key: IDEMPOTENCY_KEY = None
) -> Order:
    holder.require("orders")
    now = utcnow()
    once = _once(holder, idempotency_key, "decline", order_id)
    async with _rules(), db.write_transaction():
        if once and not await once.take(now):
            return await _answered_before(holder, once)
        order = await decisions.decline_order(holder.actor, order_id, data.reason, now)
        if once:
            await once.done(order_id, order["company"])
    return Order(**await _order_or(holder, "orders", order_id))


@get("/batches", tags=["batches"], summary="Batches: seats with one start and end", **LIST)
async def list_batches(
    request: Request, holder: KeyHolder, after: CURSOR = None, limit: LIMIT = None, company_id: FILTER_ID = None
) -> BatchPage:
    data, next_cursor = await _list(request, holder, "batches", after, limit, company_id=company_id)
    return BatchPage([Batch(**row) for row in data], next_cursor)


@get("/batches/{batch_id:int}", tags=["batches"], summary="One batch", **ONE)
async def get_batch(holder: KeyHolder, batch_id: ID) -> Batch:
    return Batch(**await _one(holder, "batches", batch_id))


@get("/allocations", tags=["batches"], summary="Seats given to users", **LIST)
async def list_allocations(
    request: Request,
    holder: KeyHolder,
    after: CURSOR = None,
    limit: LIMIT = None,
    company_id: FILTER_ID = None,
    batch_id: FILTER_ID = None,
) -> AllocationPage:
    data, next_cursor = await _list(
        request, holder, "allocations", after, limit, company_id=company_id, batch_id=batch_id
    )
    return AllocationPage([Allocation(**row) for row in data], next_cursor)


INVOICE_STATUS = Annotated[str | None, Parameter(pattern="^(draft|issued|paid|void)$")]


@get("/invoices", tags=["billing"], summary="Invoices to customers under the partner (billing scope)", **LIST)
async def list_invoices(
    request: Request,
    holder: KeyHolder,
    after: CURSOR = None,
    limit: LIMIT = None,
    company_id: FILTER_ID = None,
    status: INVOICE_STATUS = None,
) -> InvoicePage:
    data, next_cursor = await _list(request, holder, "invoices", after, limit, company_id=company_id, status=status)
    return InvoicePage([Invoice(**row) for row in data], next_cursor)


@get("/invoices/{invoice_id:int}", tags=["billing"], summary="One invoice (billing scope)", **ONE)
async def get_invoice(holder: KeyHolder, invoice_id: ID) -> Invoice:
    return Invoice(**await _one(holder, "invoices", invoice_id))


@get("/payments", tags=["billing"], summary="Card charges for invoices (billing scope)", **LIST)
async def list_payments(
    request: Request,
    holder: KeyHolder,
    after: CURSOR = None,
    limit: LIMIT = None,
    company_id: FILTER_ID = None,
    invoice_id: FILTER_ID = None,
) -> PaymentPage:
    data, next_cursor = await _list(
        request, holder, "payments", after, limit, company_id=company_id, invoice_id=invoice_id
    )
    return PaymentPage([Payment(**row) for row in data], next_cursor)


API_V1 = Router(
    "/api/v1",
    route_handlers=[
        list_companies,
        get_company,
        list_users,
        get_user,
        list_orders,
        get_order,
        request_order,
        assign_order,
        decline_order,
        list_batches,
        get_batch,
        list_allocations,
        list_invoices,
        get_invoice,
        list_payments,
    ],  # fmt: skip
    guards=[key_guard],
    dependencies={"holder": Provide(provide_holder)},
    opt={"skip_session": True, "exclude_from_csrf": True},
)
