"""Bad input gets a clear 4xx page in the portal's layout, never a 500; htmx
requests get a fragment aimed at the layout's error region; /api/ gets JSON. An
unexpected failure is a 500 page that names the request id, which is logged."""

from __future__ import annotations

import logging

import httpx
import pytest
from litestar import get
from litestar.params import FromPath

from portal.tables import ApiKey, Company, LicenceOrder
from portal.web.app import create_app
from tests.support import csrf_headers, post_form, running, sign_in

HUGE = "99999999999999999999"


def is_page(response) -> bool:
    return response.headers["content-type"].startswith("text/html") and "<html" in response.text


# (path, status): each answered 500 before, on one engine or both.
BAD_GETS = [
    (f"/companies/{HUGE}", 404),
    ("/companies/1000000000000", 404),  # ≥ 2³¹: PostgreSQL's integer refused it
    ("/companies/2147483648", 404),
    ("/companies/0", 404),
    ("/companies/-5", 404),
    (f"/companies/{HUGE}/licences", 404),
    (f"/companies/1/users/{HUGE}", 404),
    (f"/licences/orders/{HUGE}/menu", 404),
    ("/licences/orders?requested_to=9999-12-31", 200),  # a date out of range is no filter
    ("/licences/orders?requested_from=0001-01-01", 200),
    (f"/licences/orders?min_quantity={HUGE}", 200),  # a number out of range is no filter
    (f"/licences/orders?customer={HUGE}&product={HUGE}&requested_by=-{HUGE}", 200),
    (f"/licences/orders?page={HUGE}", 200),  # pages go by cursor now: an old page link is the first page
    (f"/companies?page={HUGE}", 400),
    ("/companies?page=2147483647", 200),  # in range, past the end: an empty page
    ("/licences/orders?page=2147483647", 200),
    ("/audit?cursor=not-a-cursor", 200),  # a cursor that does not check out is the first page
    ("/audit?cursor=" + "A" * 5000, 200),
    ("/licences/orders?cursor=not-a-cursor", 200),
    ("/notifications?cursor=" + "A" * 5000, 200),
    ("/billing/invoices?cursor=a.b", 200),
    (f"/audit?who={HUGE}&company=-{HUGE}&what=nothing&from=9999-12-31", 200),  # read as no filter
    ("/audit/filters/%00", 400),
    (f"/companies/new?parent_id={HUGE}", 400),
    ("/companies?q=a%00b", 400),
    ("/companies?q=%1b%5b31m", 400),
    ("/licences/orders?status=%00", 400),
    ("/licences/orders/filters/%00", 400),
]


@pytest.mark.parametrize(("path", "status"), BAD_GETS)
async def test_bad_query_and_path_values_get_a_4xx_page(client, tree, path, status):
    await sign_in(client, tree.email("partner"))
    response = await client.get(path)
    assert response.status_code == status, response.text[:300]
    assert is_page(response)


async def test_out_of_range_ids_in_a_form_are_a_form_error_not_a_500(client, tree):
    await sign_in(client, tree.email("partner"))
    response = await post_form(
        client,
        "/companies/new",
        "/companies",
        {"name": "Big", "kind": "customer", "parent_id": HUGE, "first_order": HUGE, "trial_seats": "-" + HUGE},
    )
    assert response.status_code == 400
    assert "Choose where the company stands." in response.text
    assert await Company.count() == 6


@pytest.mark.parametrize("bad", ["Evil\x00Corp", "Bell\x07", "esc\x1b[2J"])
async def test_control_characters_in_form_fields_are_refused_with_a_message(client, tree, bad):
    await sign_in(client, tree.email("partner"))
    created = await post_form(
        client, "/companies/new", "/companies", {"name": bad, "kind": "customer", "parent_id": tree.partner["id"]}
    )
    assert created.status_code == 400 and is_page(created)
    assert "control character" in created.text
    po = await post_form(
        client,
        "/companies/new",
        "/companies",
        {"name": "Fine", "kind": "customer", "parent_id": tree.partner["id"], "first_order": "3", "po_number": bad},
    )
    assert po.status_code == 400
    key = await post_form(client, "/settings/api-keys", "/settings/api-keys", {"name": bad})
    assert key.status_code == 400
    assert await Company.count() == 6 and await LicenceOrder.count() == 0 and await ApiKey.count() == 0


async def test_a_decline_reason_with_a_nul_is_refused_and_the_order_stays(client, tree):
    from portal.domain.access import load_actor
    from portal.domain.clock import utcnow
    from portal.domain.orders import requests

    customer = await load_actor(tree.managers["north"]["id"], None)
    order = await requests.request_order(customer, tree.north["id"], 5, None, "", utcnow())
    await sign_in(client, tree.email("partner"))
    response = await post_form(
        client, f"/licences/orders/{order['id']}/menu", f"/licences/orders/{order['id']}/decline", {"reason": "no\x00"}
    )
    assert response.status_code == 400 and is_page(response)
    assert (await LicenceOrder.select(LicenceOrder.status).first())["status"] == "requested"


async def test_newlines_and_tabs_in_a_text_field_are_not_refused(client, tree):
    await sign_in(client, tree.email("partner"))
    response = await post_form(
        client,
        "/companies/new",
        "/companies",
        {"name": "Tab\tLine\r\nCo", "kind": "customer", "parent_id": tree.partner["id"]},
    )
    assert response.status_code in (302, 303)
    assert await Company.exists().where(Company.name == "Tab Line Co")


async def test_the_api_answers_json_for_bad_input(client, tree):
    from portal.domain import entitlements
    from portal.domain.access import load_actor
    from portal.domain.clock import utcnow

    partner = await load_actor(tree.managers["partner"]["id"], None)
    _, key = await entitlements.create_key(partner, "Training platform", utcnow())
    for path in ("/api/v1/entitlements/a%00b@x.example", "/api/v1/entitlements/x@y.example?z=%00"):
        # The key is checked first: without a valid one, 401 whatever the request holds.
        assert (await client.get(path, headers={"Authorization": "Bearer lp_nothing"})).status_code == 401
        response = await client.get(path, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 400, path
        assert response.headers["content-type"].startswith("application/json")
        assert "control character" in response.json()["detail"]
    unauthorised = await client.get("/api/v1/entitlements/x@y.example")
    assert unauthorised.status_code == 401 and unauthorised.json()["status_code"] == 401


async def test_htmx_requests_get_a_fragment_aimed_at_the_error_region(client, tree):
    await sign_in(client, tree.email("partner"))
    htmx = {"HX-Request": "true", "HX-Target": "company-results"}
    response = await client.get("/companies?q=%00", headers=htmx)
    assert response.status_code == 400
    assert "<html" not in response.text and 'role="alert"' in response.text
    assert response.headers["HX-Retarget"] == "#error-region"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert response.headers["HX-Push-Url"] == "false"
    missing = await client.get(f"/licences/orders/{HUGE}/menu", headers={"HX-Request": "true"})
    assert missing.status_code == 404 and "<html" not in missing.text


async def test_every_error_status_is_a_page_in_the_layout(client, tree):
    await sign_in(client, tree.email("partner"))
    nowhere = await client.get("/no/such/page")
    assert nowhere.status_code == 404 and is_page(nowhere)
    wrong_method = await client.get("/manage/exit")
    assert wrong_method.status_code == 405 and is_page(wrong_method)
    too_big = await client.post(
        "/companies",
        content=b"name=" + b"x" * 10_000_001,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413 and is_page(too_big)
    unsure = await client.get("/companies?page=abc")
    assert unsure.status_code == 400 and is_page(unsure)


async def test_a_failed_csrf_check_is_a_form_expired_page(client, tree):
    await sign_in(client, tree.email("partner"))
    response = await client.post("/companies", data={"name": "X", "_csrf_token": "forged"})
    assert response.status_code == 403 and is_page(response)
    assert "Form expired" in response.text
    htmx = await client.post(f"/companies/{tree.direct['id']}/manage", headers={"HX-Request": "true"})
    assert htmx.status_code == 403 and "Form expired" in htmx.text and "<html" not in htmx.text


async def test_a_domain_refusal_is_a_403_page(client, tree):
    await sign_in(client, tree.email("north"))
    response = await client.get("/companies")
    assert response.status_code == 403 and is_page(response)


class Remember(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_an_unexpected_failure_is_a_500_page_naming_the_logged_request_id():
    @get("/boom", include_in_schema=False)
    async def boom() -> str:
        raise RuntimeError("the disk caught fire")

    app = create_app(sign_ins_per_minute=1000)
    app.register(boom)
    remember = Remember()
    async with running(app):
        # After start-up: the app's logging set-up replaces the root's handlers.
        logging.getLogger("portal.web").addHandler(remember)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as c:
                response = await c.get("/boom")
                htmx = await c.get("/boom", headers={"HX-Request": "true"})
        finally:
            logging.getLogger("portal.web").removeHandler(remember)
    assert response.status_code == 500 and is_page(response)
    request_id = response.headers["X-Request-ID"]
    assert request_id in response.text
    assert "the disk caught fire" not in response.text  # no internals for the user
    assert htmx.status_code == 500 and htmx.headers["X-Request-ID"] in htmx.text and "<html" not in htmx.text
    [logged] = [r for r in remember.records if r.name == "portal.web" and getattr(r, "request_id", None) == request_id]
    assert logged.levelno == logging.ERROR and "the disk caught fire" in str(logged.exc_info[1])


async def test_csrf_headers_still_work_for_htmx(client, tree):
    await sign_in(client, tree.email("partner"))
    headers = await csrf_headers(client, "/companies")
    response = await client.post(f"/companies/{tree.direct['id']}/manage", headers={**headers, "HX-Request": "true"})
    assert response.status_code in (302, 303)


async def test_each_status_has_its_page_its_fragment_and_json_under_api():
    from litestar.exceptions import HTTPException

    @get(["/raise/{status:int}", "/api/v1/raise/{status:int}"], include_in_schema=False)
    async def raise_status(status: FromPath[int]) -> str:
        raise HTTPException(status_code=status)

    app = create_app(sign_ins_per_minute=1000)
    app.register(raise_status)
    transport = httpx.ASGITransport(app=app)
    async with running(app), httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        for status, words in ((409, "changed meanwhile"), (429, "Wait a minute"), (503, "Try again in a minute")):
            page = await c.get(f"/raise/{status}")
            assert page.status_code == status and is_page(page) and words in page.text
            fragment = await c.get(f"/raise/{status}", headers={"HX-Request": "true"})
            assert fragment.status_code == status and "<html" not in fragment.text and words in fragment.text
            assert fragment.headers["HX-Retarget"] == "#error-region"
            api = await c.get(f"/api/v1/raise/{status}")
            assert api.status_code == status and api.json()["status_code"] == status


def test_only_the_csrf_middleware_raises_litestars_permission_denied():
    """errors.py reads PermissionDeniedException as "the CSRF check failed" (one
    handler, by type): the portal's own refusals must stay the domain's PermissionDenied.
    The CSV upload checks the CSRF token itself, after reading its body, and raises
    what the middleware would."""
    from portal.settings import PROJECT_DIR

    raisers = [
        str(source.relative_to(PROJECT_DIR))
        for source in (PROJECT_DIR / "portal").rglob("*.py")
        if "PermissionDeniedException" in source.read_text() and source.name != "errors.py"
    ]
    assert raisers == ["portal/web/imports.py"]
