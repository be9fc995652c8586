"""The customer's Billing: the dashboard (plan, users, add-ons, renewal, payment method,
billing address, invoices), "Subscriptions", buying, Upgrade and "Add users" with the
price shown before confirming, and "Create an Online Billing Account".

For customer managers, and partner managers in manage mode; the domain decides who
may (another tenant's company answers 404)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template

from portal.domain.access import Actor, get_company
from portal.domain.billing import accounts, catalogue, changes, invoices, profiles, quotes, subscriptions
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.licences import summary, tabs
from portal.web.billing import messages
from portal.web.billing.common import (
    added_from,
    address_from,
    address_values,
    card_setup,
    change_from,
    form_page,
    kept_values,
    page_helpers,
    payment_method_from,
    purchase_from,
    quote_key,
    quoted_from,
    services_of,
)
from portal.web.billing.export import invoices_csv
from portal.web.cursors import list_cursor_key
from portal.web.flash import flash
from portal.web.render import render
from portal.web.session import CurrentActor


async def billed_company(actor: Actor, company_id: int) -> dict:
    """A customer under the actor's wing: partners sell, they are not billed here."""
    company = await get_company(actor, company_id)
    if company["kind"] != "customer":
        raise NotFound("Billing is kept for customer companies.")
    return company


async def _offer(company_id: int) -> dict[str, Any]:
    """The seller's catalogue, grouped as the buy and Upgrade forms show it."""
    seller = await catalogue.seller_of(company_id)
    items = [i for i in await catalogue.items(seller["id"]) if i["active"]]
    return {
        "seller": seller,
        "profile": await profiles.profile(seller["id"]),
        "tiers": [i for i in items if i["kind"] == "tier"],
        "credits": {i["code"]: i for i in items if i["kind"] == "user_credit"},
        "addons": [i for i in items if i["kind"] == "addon"],
    }


class CustomerBillingController(Controller):
    path = "/companies/{company_id:int}/billing"

    @get("/", name="billing.customer.dashboard")
    async def dashboard(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], cursor: FromQuery[str] = ""
    ) -> Template:
        company = await billed_company(actor, company_id)
        # Also in manage mode, where the wing is the partner's: this company's invoices only.
        filters = {"customer": company_id}
        return render(
            request,
            "pages/billing.html",
            {
                **page_helpers(request),
                "company": company,
                "seller": await catalogue.seller_of(company_id),
                "subscription": await subscriptions.current_subscription(actor, company_id),
                # Seats held under Licenses: a company with none bought here may still hold some.
                "seats": await tabs.company_seats(actor, company_id, utcnow()),
                "license_summary": await summary.licence_summary(actor, company_id, utcnow()),
                "addons_bought": await subscriptions.addons_bought(actor, company_id),
                "account": await accounts.billing_account(actor, company_id),
                "listing": await invoices.list_invoices(actor, filters, cursor or None, list_cursor_key(request)),
                # For the list's pager when htmx asks for the list alone.
                "base": f"/companies/{company_id}/billing",
                "export": f"/companies/{company_id}/billing/invoices.csv",
                "query": "",
                "partner": False,
            },
            fragments={"invoice-results": "partials/billing/_invoices.html"},
        )

    @get("/subscriptions", name="billing.customer.subscriptions_page")
    async def subscriptions_page(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template:
        """ "Subscriptions": the live licence and what can be done with it (Cancel, Upgrade, …)."""
        company = await billed_company(actor, company_id)
        return render(
            request,
            "pages/billing_subscriptions.html",
            {
                **page_helpers(request),
                "company": company,
                "subscription": await subscriptions.current_subscription(actor, company_id),
                "seats": await tabs.company_seats(actor, company_id, utcnow()),
                "now": utcnow(),
            },
        )

    @get("/invoices.csv", name="billing.customer.export")
    async def export(self, actor: CurrentActor, company_id: FromPath[int]) -> Stream:
        company = await billed_company(actor, company_id)  # refused before the first byte goes out
        return Stream(
            invoices_csv(actor, {"customer": company["id"]}),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="invoices.csv"'},
        )

    # --- Buy: choose → the price (nothing written) → "Pay Online" / "Pay by Invoice" -------------

    @get("/buy", name="billing.customer.buy_form")
    async def buy_form(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        return await self._buy_form(request, actor, company_id, {"tier": "", "method": "online"}, {})

    @get("/buy/quote", name="billing.customer.buy_quote")
    async def buy_quote(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        """The price of what the form chose, before anything is bought."""
        await billed_company(actor, company_id)
        values = request.query_params
        try:
            purchase = purchase_from(values)
            quote = await quotes.quote_purchase(actor, company_id, purchase, utcnow())
        except ValidationFailed as refused:
            return await self._buy_form(request, actor, company_id, _buy_values(values), refused.errors)
        return await self._quote_page(request, actor, company_id, purchase, quote, {}, {})

    @post("/buy", name="billing.customer.buy")
    async def buy(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template | Redirect:
        await billed_company(actor, company_id)
        form = await request.form()
        now = utcnow()
        try:
            purchase = purchase_from(form)
        except ValidationFailed as refused:
            return await self._buy_form(request, actor, company_id, _buy_values(form), refused.errors)
        # A card entered on the quote page is saved by the purchase, once it is allowed.
        account = None
        if purchase.method == "online" and payment_method_from(form):
            account = accounts.OnlineAccount(payment_method=payment_method_from(form), **address_from(form))
        try:
            result = await subscriptions.buy(
                actor,
                company_id,
                purchase,
                now,
                quoted=quoted_from(form),
                account=account,
                processor=services_of(request).processor,
            )
        except ValidationFailed as refused:
            try:
                quote = await quotes.quote_purchase(actor, company_id, purchase, now)
            except ValidationFailed:
                # The choice itself is wrong (a tier taken off sale meanwhile): back to choosing.
                return await self._buy_form(request, actor, company_id, _buy_values(form), refused.errors)
            return await self._quote_page(
                request, actor, company_id, purchase, quote, refused.errors, kept_values(form)
            )
        if (confirm := _held_for_the_cardholder(result)) is not None:
            return confirm
        said, kind = messages.bought(result)
        flash(request, said, kind)
        return Redirect(request.app.route_reverse("billing.customer.dashboard", company_id=company_id))

    async def _buy_form(
        self, request: HTMXRequest, actor: Actor, company_id: int, values: dict[str, Any], errors: dict[str, str]
    ) -> Template:
        current = await subscriptions.current_subscription(actor, company_id)
        # Free seats that already cover the users waiting: the form warns before anything is bought.
        seats = await tabs.company_seats(actor, company_id, utcnow())
        return await _plan_form(
            request,
            actor,
            company_id,
            "pages/billing_buy.html",
            values,
            errors,
            current=current,
            buying=True,
            seats=seats,
        )

    async def _quote_page(
        self,
        request: HTMXRequest,
        actor: Actor,
        company_id: int,
        purchase: quotes.Purchase,
        quote: quotes.Quote,
        errors: dict[str, str],
        values: dict[str, Any],
    ) -> Template:
        company = await billed_company(actor, company_id)
        account = await accounts.billing_account(actor, company_id)
        chosen = {
            "tier": purchase.tier,
            "extra_users": purchase.extra_users,
            "read_only_users": purchase.read_only_users,
            "addons": purchase.addons,
            "method": purchase.method,
        }
        back = urlencode({k: v for k, v in chosen.items() if k != "addons"}) + "".join(
            f"&addons={a}" for a in purchase.addons
        )
        ask_card = purchase.method == "online" and not (account and account.get("card_last4"))
        return form_page(
            request,
            "pages/billing_quote.html",
            {
                "company": company,
                "quote": quote,
                "purchase": chosen,
                "account": account,
                # "Pay Online" needs a card kept on the account: asked here, at the last step.
                "ask_card": ask_card,
                "card_setup": await card_setup(request) if ask_card and not actor.read_only else None,
                "ask_address": not (account and account.get("billing_name")),
                "back": f"/companies/{company_id}/billing/buy?{back}",
                "quote_key": quote_key(),
            },
            values or address_values(account, company, actor),
            errors,
        )

    # --- Upgrade: more users or Pro now (pro rata), fewer from the next term ---------------------

    @get("/change", name="billing.customer.change_form")
    async def change_form(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        subscription = await _live(actor, company_id)
        values = {k: subscription[k] for k in ("tier", "extra_users", "read_only_users")}
        return await self._change_form(request, actor, company_id, subscription, values, {})

    @get("/change/quote", name="billing.customer.change_quote")
    async def change_quote(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        subscription = await _live(actor, company_id)
        values = request.query_params
        try:
            change = change_from(values)
        except ValidationFailed as refused:
            return await self._change_form(request, actor, company_id, subscription, dict(values), refused.errors)
        return await self._change_quote(request, actor, company_id, subscription, change, {})

    @post("/change", name="billing.customer.change")
    async def change(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template | Redirect:
        subscription = await _live(actor, company_id)
        form = await request.form()
        try:
            change = change_from(form)
            result = await changes.change(
                actor,
                subscription["id"],
                **change,
                now=utcnow(),
                quoted=quoted_from(form),
                processor=services_of(request).processor,
            )
        except ValidationFailed as refused:
            if "price" in refused.errors:
                # The price moved since the quote page: that page again, with the price now.
                return await self._change_quote(request, actor, company_id, subscription, change, refused.errors)
            return await self._change_form(request, actor, company_id, subscription, dict(form), refused.errors)
        if (confirm := _held_for_the_cardholder(result)) is not None:
            return confirm
        said, kind = messages.changed(result)
        flash(request, said, kind)
        return Redirect(request.app.route_reverse("billing.customer.dashboard", company_id=company_id))

    async def _change_quote(
        self,
        request: HTMXRequest,
        actor: Actor,
        company_id: int,
        subscription: dict,
        change: dict[str, Any],
        errors: dict[str, str],
    ) -> Template:
        try:
            quote = await quotes.quote_change(actor, subscription["id"], **change, now=utcnow())
        except ValidationFailed as refused:
            return await self._change_form(request, actor, company_id, subscription, change, refused.errors)
        company = await billed_company(actor, company_id)
        context = {
            "company": company,
            "subscription": subscription,
            "quote": quote,
            "change": change,
            "back": f"/companies/{company_id}/billing/change?{urlencode(change)}",
            "quote_key": quote_key(),
        }
        return form_page(request, "pages/billing_change_quote.html", context, change, errors)

    async def _change_form(
        self,
        request: HTMXRequest,
        actor: Actor,
        company_id: int,
        subscription: dict,
        values: dict[str, Any],
        errors: dict[str, str],
    ) -> Template:
        return await _plan_form(
            request,
            actor,
            company_id,
            "pages/billing_change.html",
            values,
            errors,
            subscription=subscription,
            now_tier=subscription["tier"],
        )

    # --- "Add users": more user credits on the plan held, pro rata to the term's end -------------

    @get("/add-users", name="billing.customer.add_users_form")
    async def add_users_form(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        subscription = await _live(actor, company_id)
        # "Change the choice" on the price page comes back with the counts chosen.
        values = {"standard_users": 0, "read_only_users": 0, **kept_values(request.query_params)}
        return await self._add_users_form(request, actor, company_id, subscription, values, {})

    @get("/add-users/quote", name="billing.customer.add_users_quote")
    async def add_users_quote(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        """The price of the users asked for, before anything is bought."""
        subscription = await _live(actor, company_id)
        values = kept_values(request.query_params)
        try:
            added = added_from(values)
            quote = await quotes.quote_add_users(actor, subscription["id"], **added, now=utcnow())
        except ValidationFailed as refused:
            return await self._add_users_form(request, actor, company_id, subscription, values, refused.errors)
        return await self._add_users_quote(request, actor, company_id, subscription, added, quote, {})

    @post("/add-users", name="billing.customer.add_users")
    async def add_users(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template | Redirect:
        subscription = await _live(actor, company_id)
        form = await request.form()
        values = kept_values(form)
        try:
            added = added_from(form)
            result = await changes.add_users(
                actor,
                subscription["id"],
                **added,
                now=utcnow(),
                quoted=quoted_from(form),
                processor=services_of(request).processor,
            )
        except ValidationFailed as refused:
            if "price" in refused.errors or "card" in refused.errors:
                # The price moved since the quote page (or no card is kept): that page again, as it is now.
                try:
                    quote = await quotes.quote_add_users(actor, subscription["id"], **added, now=utcnow())
                except ValidationFailed:
                    pass
                else:
                    return await self._add_users_quote(
                        request, actor, company_id, subscription, added, quote, refused.errors
                    )
            return await self._add_users_form(request, actor, company_id, subscription, values, refused.errors)
        if (confirm := _held_for_the_cardholder(result)) is not None:
            return confirm
        said, kind = messages.users_added(result)
        flash(request, said, kind)
        return Redirect(request.app.route_reverse("billing.customer.dashboard", company_id=company_id))

    async def _add_users_form(
        self,
        request: HTMXRequest,
        actor: Actor,
        company_id: int,
        subscription: dict,
        values: dict[str, Any],
        errors: dict[str, str],
    ) -> Template:
        company = await billed_company(actor, company_id)
        offer = await _offer(company_id)
        context = {"company": company, "subscription": subscription, **offer}
        return form_page(request, "pages/billing_add_users.html", context, values, errors)

    async def _add_users_quote(
        self,
        request: HTMXRequest,
        actor: Actor,
        company_id: int,
        subscription: dict,
        added: dict[str, int],
        quote: quotes.Quote,
        errors: dict[str, str],
    ) -> Template:
        company = await billed_company(actor, company_id)
        context = {
            "company": company,
            "subscription": subscription,
            "quote": quote,
            "added": added,
            "back": f"/companies/{company_id}/billing/add-users?{urlencode(added)}",
            "quote_key": quote_key(),
        }
        return form_page(request, "pages/billing_add_users_quote.html", context, added, errors)

    # --- "Create an Online Billing Account", the card, the billing address ------------------------

    @get("/account", name="billing.customer.account_page")
    async def account_page(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        return await self._account_page(request, actor, company_id, {}, None)

    @post("/account", name="billing.customer.save_account")
    async def save_account(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template | Redirect:
        """ "Create an Online Billing Account": card and billing address together; an invoice
        subscription switches to "Pay Online" and renews by itself."""
        return await self._account_form(
            request,
            actor,
            company_id,
            "account",
            lambda form: accounts.create_online_billing_account(
                actor,
                company_id,
                payment_method=payment_method_from(form),
                **address_from(form),
                now=utcnow(),
                processor=services_of(request).processor,
            ),
            messages.account_created,
        )

    @post("/card", name="billing.customer.save_card")
    async def save_card(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template | Redirect:
        return await self._account_form(
            request,
            actor,
            company_id,
            "card",
            lambda form: accounts.save_card(
                actor, company_id, payment_method_from(form), utcnow(), processor=services_of(request).processor
            ),
            messages.card_saved,
        )

    @post("/address", name="billing.customer.save_address")
    async def save_address(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template | Redirect:
        return await self._account_form(
            request,
            actor,
            company_id,
            "address",
            lambda form: accounts.save_billing_address(actor, company_id, **address_from(form), now=utcnow()),
            lambda _: "Billing address saved; the next invoices carry it.",
        )

    async def _account_form(
        self,
        request: HTMXRequest,
        actor: Actor,
        company_id: int,
        form_name: str,
        save: Callable[[Any], Awaitable[Any]],
        said: Callable[[Any], str],
    ) -> Template | Redirect:
        """One of the account page's forms: saved, said in a flash, back to Billing; refused,
        the page again with what was sent (never the card's number or code) and why."""
        await billed_company(actor, company_id)
        form = await request.form()
        try:
            saved = await save(form)
        except ValidationFailed as refused:
            return await self._account_page(request, actor, company_id, kept_values(form), refused.errors, form_name)
        flash(request, said(saved))
        return Redirect(request.app.route_reverse("billing.customer.dashboard", company_id=company_id))

    async def _account_page(
        self,
        request: HTMXRequest,
        actor: Actor,
        company_id: int,
        values: dict[str, Any],
        errors: dict[str, str] | None,
        form_name: str = "",
    ) -> Template:
        company = await billed_company(actor, company_id)
        account = await accounts.billing_account(actor, company_id)
        return form_page(
            request,
            "pages/billing_account.html",
            {
                "company": company,
                "account": account,
                "subscription": await subscriptions.current_subscription(actor, company_id),
                "form_name": form_name,
                "card_setup": None if actor.read_only else await card_setup(request),
            },
            values or address_values(account, company, actor),
            errors or {},
        )


async def _plan_form(
    request: HTMXRequest,
    actor: Actor,
    company_id: int,
    template: str,
    values: dict[str, Any],
    errors: dict[str, str],
    **context: Any,
) -> Template:
    """ "Buy a licence" or "Upgrade": the seller's catalogue to choose from
    (partials/billing/_plan_form.html draws both)."""
    company = await billed_company(actor, company_id)
    offer = await _offer(company_id)
    context = {"buying": False, "now_tier": None, **offer, "company": company, **context}
    return form_page(request, template, context, values, errors)


async def _live(actor: Actor, company_id: int) -> dict:
    await billed_company(actor, company_id)
    subscription = await subscriptions.current_subscription(actor, company_id)
    if subscription is None:
        raise NotFound("This company has no subscription to change: buy one first.")
    return subscription


def _held_for_the_cardholder(result: dict) -> Redirect | None:
    """A charge the bank held for 3-D Secure: the buyer is here, so straight to confirming it."""
    charge, invoice = result.get("charge"), result.get("invoice")
    if charge is not None and charge.requires_action and invoice is not None:
        return Redirect(f"/invoices/{invoice['id']}/confirm-payment")
    return None


def _buy_values(values: Any) -> dict[str, Any]:
    kept = kept_values(values)
    kept["addons"] = list(values.getall("addons", []))
    return kept
