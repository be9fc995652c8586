"""A customer's "Licenses" section: batches, the Active / "Expired Licenses" /
Unlicensed tabs, "Allocate Licenses", the "Orders" tab and "Request Licenses"."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from portal.domain import catalogue, staff
from portal.domain.access import ROLE_NAMES, Capability, get_company, get_user
from portal.domain.clock import utcnow
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.licences import allocation, coterm, history, summary, tabs
from portal.domain.licences.allocation import Allocated, NotEnoughSeats, Selection
from portal.domain.licences.status import licence_status
from portal.domain.orders import decisions, order_list, requests
from portal.domain.two_factor import factors
from portal.tables import MANAGER_ROLES, STAFF_ROLES
from portal.web.cursors import list_cursor_key
from portal.web.flash import flash
from portal.web.forms import text, to_int
from portal.web.render import render
from portal.web.session import CurrentActor

TAB_LABELS = {"active": "Active", "expired": "Expired Licenses", "unlicensed": "Unlicensed", "orders": "Orders"}
STATUS_LABELS = {"active": "Active", "expiring": "Expiring", "expired": "Expired", "unlicensed": "Unlicensed"}


def _users(n: int) -> str:
    return f"{n:,} user{'' if n == 1 else 's'}"


def renewed_message(result: Allocated) -> str:
    """What "Allocate Licenses" did, in the words of the result: 5,000 users renewed
    until 23 Nov 2027 from the batch assigned 23 Nov 2026 (a batch is named by its
    dates: its id means nothing to a person)."""
    source = f" from the batch assigned {result.batch_starts_at:%d %b %Y}" if result.batch_starts_at else ""
    said = (
        f"{_users(result.renewed)} renewed until {result.ends_at:%d %b %Y}{source}."
        if result.renewed
        else "No one was renewed."
    )
    if result.already_covered:
        held = "already holds a seat" if result.already_covered == 1 else "already hold seats"
        said += f" {_users(result.already_covered)} {held} running past that batch's end and got none."
    return said


class LicenceController(Controller):
    path = "/companies/{company_id:int}/licences"

    @get("/", name="licences.section")
    async def section(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        tab: FromQuery[str] = "expired",
        q: FromQuery[str] = "",
        cursor: FromQuery[str] = "",
        select: FromQuery[str] = "",
    ) -> Template:
        """`select=manual` is "Select users Manually": the tab with its ticks, "Take
        seats from" and "Allocate Licenses" (a link, so it works without JavaScript)."""
        return await self._section(request, actor, company_id, tab, q, cursor, {"manual": select == "manual"})

    async def _section(
        self,
        request: HTMXRequest,
        actor,
        company_id: int,
        tab: str,
        q: str,
        cursor: str,
        extra: dict,
        status_code: int = 200,
    ) -> Template:
        now = utcnow()
        tab = tab if tab in TAB_LABELS else "expired"
        q = text(q, 100)
        key = list_cursor_key(request)
        view = await tabs.licence_view(actor, company_id, tab, q, cursor or None, now, key)
        context = {"tab": tab, "q": q, "tabs": TAB_LABELS, "status_labels": STATUS_LABELS, "now": now, **view, **extra}
        if tab == "orders":
            context["listing"] = await order_list.company_orders(actor, company_id, cursor or None, key)
        htmx = request.htmx
        if not (htmx and not htmx.history_restore_request and htmx.target == "licence-tab"):
            # The page's license summary; a tab's fragment does not show it.
            context["license_summary"] = await summary.licence_summary(actor, company_id, now)
        return render(
            request,
            "pages/licences.html",
            context,
            status_code=status_code,
            fragments={"licence-tab": "partials/licences/_tab.html"},
        )

    @get("/select-all", name="licences.select_all")
    async def select_all(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        tab: FromQuery[str] = "expired",
        q: FromQuery[str] = "",
    ) -> Template:
        """The count of "Select All", shown before anything is allocated: above
        the list (htmx), or as a page of its own (a plain link, no JavaScript)."""
        selection = Selection(select_all_tab=tab if tab in tabs.TABS else "expired", q=text(q, 100))
        view = await allocation.select_all_view(actor, company_id, selection, utcnow())
        return render(
            request,
            "pages/select_all.html",
            {"company": view.company, "view": view},
            fragments={"select-all": "partials/licences/_select_all.html"},
        )

    @post("/allocate", name="licences.allocate")
    async def allocate(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template | Redirect:
        form = await request.form()
        tab = text(form.get("tab")) or "expired"
        select_all = text(form.get("select_all"))
        selection = Selection(
            # A value that is no id names no user (0): the domain refuses it like an unknown id.
            user_ids=tuple(to_int(v) or 0 for v in form.getall("user_id", [])),
            select_all_tab=select_all if select_all in tabs.TABS else None,
            q=text(form.get("q"), 100),
        )
        try:
            result = await allocation.allocate(
                actor,
                company_id,
                selection,
                utcnow(),
                batch_id=to_int(form.get("batch_id")),
                up_to_free=form.get("up_to_free") == "1",
            )
        except NotEnoughSeats as short:
            return await self._section(
                request,
                actor,
                company_id,
                tab,
                selection.q,
                "",
                {"short": short, "selection": selection, "manual": not selection.select_all_tab},
                status_code=409,
            )
        except (ValidationFailed, NotFound) as problem:
            return await self._section(
                request,
                actor,
                company_id,
                tab,
                selection.q,
                "",
                {"problem": str(problem), "manual": not selection.select_all_tab},
                status_code=400,
            )
        flash(request, renewed_message(result))
        return Redirect(request.app.route_reverse("licences.section", company_id=company_id) + "?tab=active")

    @get("/orders/new", name="licences.new_order")
    async def new_order(self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]) -> Template:
        advice = await requests.request_advice(actor, company_id, utcnow())
        values = {
            "quantity": str(advice.suggested),
            "po_number": "",
            "product_id": "",
            "ends_with": coterm.TWELVE_MONTHS,
        }
        return await self._order_form(request, actor, company_id, values, {}, advice=advice)

    async def _order_form(
        self,
        request,
        actor,
        company_id: int,
        values: dict,
        errors: dict,
        status_code: int = 200,
        advice: requests.RequestAdvice | None = None,
        confirming: bool = False,
    ) -> Template:
        company = await get_company(actor, company_id)
        products = [p for p in await catalogue.products() if not p["is_trial"]]
        # The choice of end, while the company holds a running term; priced per license, as the
        # quantity may be typed after the page is drawn (Assign's confirmation prices the order).
        offer = await coterm.offer(company["id"], 1, utcnow())
        return render(
            request,
            "pages/request_licences.html",
            {
                "company": company,
                "values": values,
                "errors": errors,
                "products": products,
                "advice": advice or await requests.request_advice(actor, company_id, utcnow()),
                "confirming": confirming,
                "offer": offer,
                "choices": coterm.CHOICES,
            },
            status_code=status_code,
        )

    @post("/orders", name="licences.request_licences")
    async def request_licences(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int]
    ) -> Template | Redirect:
        """ "Save". A request that may be a slip answers with the warning and "Request
        anyway", a form carrying the same values and `confirm`: nothing is written until then."""
        form = await request.form()
        values = {k: text(form.get(k), 100) for k in ("quantity", "po_number", "product_id", "ends_with")}
        values["ends_with"] = values["ends_with"] or coterm.TWELVE_MONTHS
        try:
            order = await requests.request_order(
                actor,
                company_id,
                to_int(values["quantity"]),
                to_int(values["product_id"]),
                values["po_number"],
                utcnow(),
                confirmed=form.get("confirm") == "1",
                ends_with=values["ends_with"],
            )
        except requests.NeedsConfirmation as warned:
            return await self._order_form(request, actor, company_id, values, {}, advice=warned.advice, confirming=True)
        except ValidationFailed as invalid:
            return await self._order_form(request, actor, company_id, values, invalid.errors, status_code=400)
        if actor.managing_id:
            # An account manager asked, inside the customer: the next step is theirs.
            flash(
                request,
                f"{actor.managing_name}’s request for {order['quantity']:,} licenses is waiting in Requested Orders: "
                "Exit, then Assign it under Licenses → Orders.",
            )
        else:
            flash(request, f"Your request for {order['quantity']:,} licenses was sent to your account managers.")
        return Redirect(request.app.route_reverse("licences.section", company_id=company_id) + "?tab=orders")

    @post("/orders/{order_id:int}/cancel", name="licences.cancel_order")
    async def cancel_order(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], order_id: FromPath[int]
    ) -> Redirect:
        await get_company(actor, company_id)
        await decisions.cancel_order(actor, order_id, utcnow())
        flash(request, "Your request was cancelled.")
        return Redirect(request.app.route_reverse("licences.section", company_id=company_id) + "?tab=orders")


class UserLicenceController(Controller):
    path = "/companies/{company_id:int}/users/{user_id:int}"

    async def _user(self, actor, company_id: int, user_id: int) -> dict:
        user = await get_user(actor, user_id)
        if user["company"] != company_id:
            raise NotFound("No such user.")
        return user

    @get("/", name="licences.show")
    async def show(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], user_id: FromPath[int]
    ) -> Template:
        await self._user(actor, company_id, user_id)
        user, seats = await history.history(actor, user_id)
        now = utcnow()
        # Partner managers see a manager's second factor, and can reset it.
        second_factor = (
            await factors.of_user(user_id) if actor.is_partner_manager and user["role"] in MANAGER_ROLES else None
        )
        company = await get_company(actor, company_id)
        # A partner's staff: their role, which its admins change here.
        staff_roles = STAFF_ROLES if staff.is_staff(company) and user["role"] in STAFF_ROLES else ()
        return render(
            request,
            "pages/user.html",
            {
                "second_factor": second_factor,
                "staff_roles": staff_roles,
                "may_manage": actor.may(Capability.STAFF if staff.is_staff(company) else Capability.CUSTOMERS),
                "company": company,
                "user": user,
                "seats": seats,
                "now": now,
                "status": licence_status(user["licence_ends_at"], now),
                "status_labels": STATUS_LABELS,
            },
        )

    @post("/role", name="licences.change_role")
    async def change_role(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], user_id: FromPath[int]
    ) -> Redirect:
        await self._user(actor, company_id, user_id)
        form = await request.form()
        try:
            changed = await staff.change_role(actor, user_id, str(form.get("role", "")), utcnow())
        except ValidationFailed as exc:
            flash(request, next(iter(exc.errors.values())), "error")
            return Redirect(request.app.route_reverse("licences.show", company_id=company_id, user_id=user_id))
        now_is = ROLE_NAMES[changed["role"]].lower()
        if changed["changed"]:
            flash(request, f"{changed['name']} is now {now_is} (was {ROLE_NAMES[changed['was']].lower()}).")
        else:
            flash(request, f"{changed['name']} was already {now_is}: nothing changed.")
        return Redirect(request.app.route_reverse("licences.show", company_id=company_id, user_id=user_id))

    @post("/deactivate", name="licences.deactivate")
    async def deactivate(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], user_id: FromPath[int]
    ) -> Redirect:
        user = await self._user(actor, company_id, user_id)
        freed = await allocation.deactivate_user(actor, user_id, utcnow())
        seats = f" {freed} seat{'' if freed == 1 else 's'} freed for someone else." if freed else ""
        flash(request, f"{user['name']} is deactivated.{seats}")
        return Redirect(request.app.route_reverse("licences.show", company_id=company_id, user_id=user_id))
