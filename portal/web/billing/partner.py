"""The partner's Billing (partner managers): every subscription under the wing with
its renewal date and method, failed charges and cancellation requests; invoices to
record payment on; the catalogue and billing settings. Filters as on Requested
Orders ("Add Filter", one spec per list in the domain)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template

from portal.domain.access import Actor, require_partner_manager
from portal.domain.billing import catalogue, invoices, money, profiles, receivables, seller_details, subscription_list
from portal.domain.clock import utcnow
from portal.domain.errors import ValidationFailed
from portal.domain.filters import FilterSet
from portal.domain.keyset import KeysetPage
from portal.domain.numbers import is_decimal_text
from portal.web.billing.common import page_helpers
from portal.web.billing.export import ageing_csv, invoices_csv
from portal.web.cursors import list_cursor_key
from portal.web.flash import flash
from portal.web.forms import text, to_int
from portal.web.render import render
from portal.web.session import CurrentActor

# Quick links above the list: the filters partner staff act on most.
QUICK_LINKS = (
    ("failed_charges", "yes", "Failed charges"),
    ("cancellation_requested", "yes", "Cancellation requests to confirm"),
)

TABS = {"subscriptions": "Subscriptions", "invoices": "Invoices", "settings": "Catalogue and settings"}


# Far above any price or rate the domain takes, far below what Decimal's context holds
# (quantizing 1e30 to the cent needs 33 digits of its 28: InvalidOperation; 1e999999999 overflows).
_MOST = Decimal(10) ** 15


def _hundredths(cleaned: str) -> Decimal | None:
    """A number with at most two decimals, or None (not a number, NaN, infinite, too big)."""
    if not is_decimal_text(cleaned):
        return None
    try:
        value = Decimal(cleaned)
        if not value.is_finite() or abs(value) >= _MOST or value != value.quantize(Decimal("0.01")):
            return None
    except ArithmeticError:  # InvalidOperation, and Overflow for exponents past the context's
        return None
    return value


def _amount_cents(raw: object) -> int | None:
    """ "6,000.00", "$6000", "6000.5" → cents; None if it is not an amount."""
    cleaned = text(raw, 30).replace(",", "").replace("$", "").replace("€", "").replace("£", "").strip()
    amount = _hundredths(cleaned)
    if amount is None or amount < 0:
        return None
    return money.to_cents(amount)


def _rate_bp(raw: object) -> int | None:
    """ "8.25" (per cent) → 825 basis points; None unless a rate to the hundredth of a per cent."""
    rate = _hundredths(text(raw, 12).replace("%", "").strip() or "0")
    return None if rate is None else int(rate * 100)


def _price_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def _list_context(
    actor: Actor, spec: FilterSet, params: Mapping[str, Any], choices_of, lister, page: int | None
) -> dict[str, Any]:
    filters = spec.parse(params)
    active = spec.as_query(filters)
    return {
        "listing": await lister(actor, filters, page),
        "filters": active,
        "spec": spec,
        "choices": await choices_of(actor, set(active)),
        "query": urlencode(active),
    }


class PartnerBillingController(Controller):
    path = "/billing"

    # Also /billing/subscriptions: the address the e-mails about cancellation requests link to.
    @get(["/", "/subscriptions"], name="billing.partner.subscriptions_tab")
    async def subscriptions_tab(self, request: HTMXRequest, actor: CurrentActor, page: FromQuery[int] = 1) -> Template:
        require_partner_manager(actor)
        spec = subscription_list.SUBSCRIPTION_FILTERS
        context = await _list_context(
            actor,
            spec,
            request.query_params,
            subscription_list.filter_choices,
            subscription_list.list_subscriptions,
            page,
        )
        return render(
            request,
            "pages/billing_partner.html",
            {
                **page_helpers(request),
                **context,
                "tab": "subscriptions",
                "tabs": TABS,
                "base": "/billing",
                "quick_links": QUICK_LINKS,
                "status_labels": subscription_list.STATUS_LABELS,
                "now": utcnow(),
            },
            fragments={"billing-results": "partials/billing/_subscriptions.html"},
        )

    @get("/filters/{name:str}", name="billing.partner.subscription_filter")
    async def subscription_filter(self, request: HTMXRequest, actor: CurrentActor, name: FromPath[str]) -> Template:
        require_partner_manager(actor)
        return await _filter_field(
            request, actor, subscription_list.SUBSCRIPTION_FILTERS, subscription_list.filter_choices, name
        )

    @get("/invoices", name="billing.partner.invoices_tab")
    async def invoices_tab(self, request: HTMXRequest, actor: CurrentActor, cursor: FromQuery[str] = "") -> Template:
        require_partner_manager(actor)
        key = list_cursor_key(request)

        async def lister(actor: Actor, filters: Mapping[str, Any], _: None) -> KeysetPage:
            return await invoices.list_invoices(actor, filters, cursor or None, key)

        context = await _list_context(
            actor, invoices.INVOICE_FILTERS, request.query_params, invoices.filter_choices, lister, None
        )
        filters = invoices.INVOICE_FILTERS.parse(request.query_params)
        return render(
            request,
            "pages/billing_partner.html",
            {
                **page_helpers(request),
                **context,
                "tab": "invoices",
                "tabs": TABS,
                "base": "/billing/invoices",
                "export": "/billing/invoices.csv",
                "ageing": "/billing/invoices/ageing.csv",
                "partner": True,
                "outstanding": await receivables.outstanding_totals(actor, filters),
            },
            fragments={"billing-results": "partials/billing/_invoices.html"},
        )

    @get("/invoices/filters/{name:str}", name="billing.partner.invoice_filter")
    async def invoice_filter(self, request: HTMXRequest, actor: CurrentActor, name: FromPath[str]) -> Template:
        require_partner_manager(actor)
        return await _filter_field(request, actor, invoices.INVOICE_FILTERS, invoices.filter_choices, name)

    @get("/invoices.csv", name="billing.partner.export")
    async def export(self, request: HTMXRequest, actor: CurrentActor) -> Stream:
        filters = invoices.INVOICE_FILTERS.parse(request.query_params)
        require_partner_manager(actor)  # refused before the first byte goes out
        return Stream(
            invoices_csv(actor, filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="invoices.csv"'},
        )

    @get("/invoices/ageing.csv", name="billing.partner.ageing_export")
    async def ageing_export(self, request: HTMXRequest, actor: CurrentActor) -> Stream:
        """ "Ageing CSV": per customer, what it owes by how late (receivables.BUCKETS)."""
        filters = invoices.INVOICE_FILTERS.parse(request.query_params)
        require_partner_manager(actor)
        now = utcnow()
        return Stream(
            ageing_csv(actor, filters, now),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="ageing-{now:%Y-%m-%d}.csv"'},
        )

    # --- The catalogue and billing settings of the actor's own company (the seller) -----------

    @get("/settings", name="billing.partner.settings")
    async def settings(self, request: HTMXRequest, actor: CurrentActor) -> Template:
        return await self._settings(request, actor, {}, {})

    @post("/settings", name="billing.partner.save_settings")
    async def save_settings(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        require_partner_manager(actor)
        form = await request.form()
        rate = _rate_bp(form.get("tax_rate"))
        try:
            if rate is None:
                raise ValidationFailed({"tax_rate_bp": "Enter the tax rate in per cent, for example 8.25 (or 0)."})
            saved = await profiles.save_profile(
                actor,
                actor.company_id,
                currency=text(form.get("currency"), 3),
                tax_rate_bp=rate,
                assign_unpaid=form.get("assign_unpaid") == "yes",
                now=utcnow(),
            )
        except ValidationFailed as refused:
            return await self._settings(request, actor, refused.errors, {"profile": dict(form)})
        unpaid = "assigned at once" if saved["assign_unpaid"] else "assigned once their invoice is paid"
        flash(
            request,
            f"Billing settings saved: prices in {saved['currency']}, tax {money.format_rate(saved['tax_rate_bp'])}, "
            f"invoice orders {unpaid}. Invoices already issued keep theirs.",
        )
        return Redirect(request.app.route_reverse("billing.partner.settings"))

    @post("/settings/seller", name="billing.partner.save_seller")
    async def save_seller(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        """ "Seller details on invoices": the name, address, tax id and payment instructions
        every invoice and credit note of the actor's company prints."""
        require_partner_manager(actor)
        form = await request.form()
        sent = seller_details.SellerDetails(
            legal_name=text(form.get("legal_name"), 400),
            address=text(form.get("address"), 2000),
            tax_id=text(form.get("tax_id"), 100),
            payment_instructions=text(form.get("payment_instructions"), 4000),
        )
        try:
            saved = await seller_details.save_seller_details(actor, actor.company_id, sent, now=utcnow())
        except ValidationFailed as refused:
            return await self._settings(request, actor, {}, {"seller": sent}, seller_errors=refused.errors)
        said = "nothing on how to pay"
        if saved.payment_instructions:
            said = "payment instructions on unpaid invoices of customers who pay by invoice"
        flash(
            request,
            f"Seller details saved: invoices and credit notes downloaded from now on show "
            f"{saved.legal_name or actor.company_name}, "
            f"{'your address' if saved.address else 'no address'}, "
            f"{'tax id ' + saved.tax_id if saved.tax_id else 'no tax id'}, and {said}.",
        )
        return Redirect(request.app.route_reverse("billing.partner.settings"))

    @post("/catalogue", name="billing.partner.save_catalogue")
    async def save_catalogue(self, request: HTMXRequest, actor: CurrentActor) -> Template | Redirect:
        """The catalogue's one form: every item's price, included users (tiers), name
        (add-ons) and For sale, saved together or not at all."""
        require_partner_manager(actor)
        form = await request.form()
        codes = [i["code"] for i in await catalogue.items(actor.company_id) if f"price.{i['code']}" in form]
        values = {
            code: {f: form.get(f"{f}.{code}") for f in ("price", "included_users", "name", "active")} for code in codes
        }
        unread = {
            code: {"price_cents": "Enter a price such as 6000.00."}
            for code in codes
            if _amount_cents(values[code]["price"]) is None
        }
        try:
            if unread:
                raise catalogue.CatalogueRefused(unread)
            changes = [
                catalogue.ItemChange(
                    code,
                    _amount_cents(values[code]["price"]) or 0,
                    to_int(values[code]["included_users"]) if text(values[code]["included_users"]) else None,
                    values[code]["active"] == "yes",
                    text(values[code]["name"], catalogue.MAX_NAME + 100) if values[code]["name"] is not None else None,
                )
                for code in codes
            ]
            before = {i["code"]: i for i in await catalogue.items(actor.company_id)}
            saved = await catalogue.save_items(actor, actor.company_id, changes, now=utcnow())
        except catalogue.CatalogueRefused as refused:
            return await self._settings(request, actor, {}, values, refused.by_item)
        currency = (await profiles.profile(actor.company_id))["currency"]
        fields = ("name", "price_cents", "included_users", "active")
        said = [
            _item_words(item, currency) for item in saved if any(item[f] != before[item["code"]][f] for f in fields)
        ]
        flash(request, "; ".join(said) + ". Invoices already issued keep their prices." if said else "Nothing changed.")
        return Redirect(request.app.route_reverse("billing.partner.settings"))

    async def _settings(
        self,
        request: HTMXRequest,
        actor: Actor,
        profile_errors: dict[str, str],
        values: dict[str, Any],
        item_errors: dict[str, dict[str, str]] | None = None,
        seller_errors: dict[str, str] | None = None,
    ) -> Template:
        require_partner_manager(actor)
        profile = await profiles.profile(actor.company_id)
        items = await catalogue.items(actor.company_id)
        failed = bool(profile_errors or item_errors or seller_errors)
        return render(
            request,
            "pages/billing_settings.html",
            {
                **page_helpers(request),
                "tab": "settings",
                "tabs": TABS,
                "profile": profile,
                "tax_rate": values.get("profile", {}).get("tax_rate") or _rate_text(profile["tax_rate_bp"]),
                "currencies": profiles.CURRENCIES,
                "items": items,
                "prices": {
                    i["code"]: values.get(i["code"], {}).get("price") or _price_text(i["price_cents"]) for i in items
                },
                "names": {i["code"]: values.get(i["code"], {}).get("name") or i["name"] for i in items},
                # A refused form comes back as it was sent, not as it is stored.
                "included": {
                    i["code"]: values[i["code"]]["included_users"] if i["code"] in values else i["included_users"]
                    for i in items
                },
                "for_sale": {
                    i["code"]: values[i["code"]]["active"] == "yes" if i["code"] in values else i["active"]
                    for i in items
                },
                "profile_errors": profile_errors,
                "item_errors": item_errors or {},
                # A refused form comes back as it was sent.
                "seller": values.get("seller") or seller_details.of_profile(profile),
                "seller_errors": seller_errors or {},
            },
            status_code=400 if failed else 200,
        )


def _item_words(item: dict, currency: str) -> str:
    per = {"year": "per year", "month": "per user per month"}.get(item["period"], "once")
    said = f"{item['name']}: {money.format_money(item['price_cents'], currency)} {per}"
    if item["kind"] == "tier":
        said += f", {item['included_users']:,} standard users included"
    return said + ("" if item["active"] else ", not for sale")


def _rate_text(rate_bp: int) -> str:
    return money.format_rate(rate_bp).removesuffix(" %")


async def _filter_field(request: HTMXRequest, actor: Actor, spec: FilterSet, choices_of, name: str) -> Template:
    """ "Add Filter": the field of one filter, added to the filter bar."""
    if name not in spec:
        name = next(iter(spec)).name
    return render(
        request,
        "partials/_filter_field.html",
        {"name": name, "value": "", "spec": spec, "choices": await choices_of(actor, {name})},
    )
