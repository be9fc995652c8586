"""The partner's Subscriptions list: every subscription under its wing, narrowed
by the filters every list of the portal offers (domain/filters.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from piccolo.columns.combination import WhereRaw
from piccolo.query import OrderByRaw

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.filters import Filter, FilterSet, as_date, as_int, day_end, one_of
from portal.domain.pages import Page, paginate
from portal.tables import Company
from portal.tables.billing import METHODS, SUBSCRIPTION_STATUSES, Subscription, SubscriptionStatus

# Declined charges of an invoice still to pay, and money taken (or perhaps taken: an
# attempt whose worker died) for an invoice voided meanwhile, until its automatic
# refund (billing/refunds.py) succeeded: the refund row is the record after that.
_FAILED_CHARGES = WhereRaw(
    "EXISTS (SELECT 1 FROM card_charge JOIN invoice ON invoice.id = card_charge.invoice "
    "WHERE invoice.subscription = subscription.id AND ("
    "(invoice.status = 'issued' AND card_charge.status = 'declined') "
    "OR (invoice.status = 'void' AND card_charge.status IN ('succeeded', 'pending') AND NOT EXISTS ("
    "SELECT 1 FROM refund WHERE refund.charge = card_charge.id AND refund.status = 'succeeded'))))"
)
_YES = one_of(("yes",))
# The guide's words for the billing methods.
METHOD_LABELS = {"online": "Pay Online", "invoice": "Pay by Invoice"}
STATUS_LABELS: dict[str, str] = {
    SubscriptionStatus.PENDING: "Pending",
    SubscriptionStatus.ACTIVE: "Active",
    SubscriptionStatus.LAPSED: "Lapsed",
    SubscriptionStatus.ENDED: "Ended",
}

SUBSCRIPTION_FILTERS = FilterSet(
    Filter("customer", "Customer", "select", as_int, lambda v: Subscription.company == v),
    Filter("status", "Status", "select", one_of(SUBSCRIPTION_STATUSES), lambda v: Subscription.status == v),
    Filter("method", "Billing method", "select", one_of(METHODS), lambda v: Subscription.method == v),
    Filter("renews_before", "Renews before", "date", as_date, lambda v: Subscription.term_end < day_end(v)),
    Filter("failed_charges", "Failed charges", "select", _YES, lambda v: _FAILED_CHARGES),
    Filter(
        "cancellation_requested",
        "Cancellation requested",
        "select",
        _YES,
        lambda v: Subscription.cancel_requested_at.is_not_null() & (Subscription.auto_renew == True),  # noqa: E712
    ),
)
_LIST_COLUMNS = (*Subscription.all_columns(), Subscription.company.name.as_alias("company_name"))


async def list_subscriptions(actor: Actor, filters: Mapping[str, Any], page: int) -> Page[dict[str, Any]]:
    """Every subscription under the partner's wing, next renewal first (pending
    ones, with no term yet, last), narrowed by SUBSCRIPTION_FILTERS values."""
    require_partner_manager(actor)
    where = SUBSCRIPTION_FILTERS.where(filters, under_wing(actor, Subscription.company_path))
    select = (
        Subscription.select(*_LIST_COLUMNS)
        .where(where)
        .order_by(OrderByRaw("subscription.term_end IS NULL"))
        .order_by(Subscription.term_end)
        .order_by(Subscription.id)
    )
    return await paginate(select, Subscription.count().where(where), page)


async def filter_choices(actor: Actor, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The options of the "Add Filter" selects among `names`: the customers under
    the wing that have a subscription, statuses, billing methods, yes."""
    names = set(names)
    choices: dict[str, list[dict[str, Any]]] = {}
    if "customer" in names:
        subscribed = (
            Subscription.select(Subscription.company).where(under_wing(actor, Subscription.company_path)).distinct()
        )
        choices["customer"] = (
            await Company.select(Company.id, Company.name).where(Company.id.is_in(subscribed)).order_by(Company.name)
        )
    if "status" in names:
        choices["status"] = [{"id": k, "name": STATUS_LABELS[k]} for k in SUBSCRIPTION_STATUSES]
    if "method" in names:
        choices["method"] = [{"id": k, "name": METHOD_LABELS[k]} for k in METHODS]
    for name in names & {"failed_charges", "cancellation_requested"}:
        choices[name] = [{"id": "yes", "name": "Yes"}]
    return choices
