"""Throw generated values at every route of the app and assert that none answers
5xx: every path parameter, query parameter and form field the templates name,
signed in as a partner manager and as a customer manager, with valid CSRF
tokens, with and without htmx headers. Deterministic (derandomize) and bounded,
so CI runs it on both engines."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar.enums import ParamType
from litestar.params import ParameterKwarg

from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.orders import decisions, order_list, requests
from portal.settings import PROJECT_DIR
from portal.tables import Company, User
from portal.web.app import create_app
from tests.factories import add_user
from tests.support import PASSWORD, sign_in

SKIPPED_PREFIXES = ("/static", "/schema")  # files and the OpenAPI document: no input of ours
# Per role; each example sends one request to every route. PORTAL_FUZZ_EXAMPLES=200 digs deeper, off CI.
EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "15"))

_PARAM = re.compile(r"{(\w+):(\w+)}")


def _routes() -> list[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]]]:
    """(method, path template, ((path param, type), …), query names the handler declares)."""
    found = []
    for route in create_app().routes:
        if route.path.startswith(SKIPPED_PREFIXES):
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                declared = []
                for name, field in handler.parsed_fn_signature.parameters.items():
                    kwarg = field.kwarg_definition
                    if isinstance(kwarg, ParameterKwarg) and kwarg.param_type == ParamType.QUERY:
                        declared.append(kwarg.name or name)
                found.append((method, route.path, tuple(_PARAM.findall(route.path)), tuple(declared)))
    return sorted(set(found))


def _form_fields() -> list[str]:
    """Every form field any template names (the viewport <meta> aside)."""
    names = set()
    for template in Path(PROJECT_DIR / "templates").rglob("*.html"):
        names |= set(re.findall(r'name="([A-Za-z_]+)"', template.read_text()))
    return sorted(names - {"viewport", "_csrf_token"})


ROUTES = _routes()
FORM_FIELDS = _form_fields()
# Query names read from request.query_params, not declared: the Requested Orders filters.
QUERY_NAMES = sorted(
    {name for *_, declared in ROUTES for name in declared} | {f.name for f in order_list.ORDER_FILTERS} | {"tab", "q"}
)
# Header values travel as bytes: printable ASCII, as a browser sends them.
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
HX_TARGETS = ["company-results", "user-results", "order-results", "licence-tab", "select-all", "audit-results"]

odd_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, -(2**31), 2**63, 10**20, 10**100]),
)
odd_dates = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "1969-12-31", "-1-01-01"]),
)
odd_text = st.one_of(
    st.text(max_size=40),  # any code point but surrogates: NUL, controls, RTL marks, emoji…
    st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=20),  # mostly ASCII and C0/C1 controls
    st.sampled_from(["", " ", "%", "_", "'", '"', "\\", "../..", "<script>", "null", "NaN", "1e309", "١٢٣"]),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "x" * n),  # very long
)


def odd_value(known_ids: list[int]):
    return st.one_of(
        odd_numbers.map(str), odd_dates, odd_text, st.sampled_from(known_ids).map(str) if known_ids else st.nothing()
    )


@pytest.fixture
async def world(tree):
    """The tree, a learner, a requested and an assigned order, so that valid ids
    reach deep into the handlers as well as odd ones."""
    learner = await add_user(tree.north, "learner@north.example", role="learner")
    customer = await load_actor(tree.managers["north"]["id"], None)
    partner = await load_actor(tree.managers["partner"]["id"], None)
    now = utcnow()
    requested = await requests.request_order(customer, tree.north["id"], 5, None, "PO-1", now)
    assigned = await requests.request_order(customer, tree.north["id"], 3, None, "", now)
    await decisions.assign_order(partner, assigned["id"], now)
    companies = [c["id"] for c in await Company.select(Company.id)]
    ids = sorted({*companies, learner["id"], *(m["id"] for m in tree.managers.values()), requested["id"]})
    return {"tree": tree, "ids": ids, "signed_in": None}


async def _signed_in(client: httpx.AsyncClient, world: dict, role: str) -> str:
    """Sign in again when an example signed out or deactivated the manager; the CSRF token of this session."""
    if world["signed_in"] != role:
        user = world["tree"].managers[role]
        await User.update({User.active: True}).where(User.id == user["id"])
        client.cookies.clear()
        await sign_in(client, user["email"], PASSWORD)
        world["signed_in"] = role
    token = client.cookies.get("csrftoken")
    if token is None:
        await client.get("/login")
        token = client.cookies.get("csrftoken")
    return token


def _url(path: str, params: dict[str, str], values: dict[str, str]) -> str:
    for name in params:
        path = path.replace(f"{{{name}:{params[name]}}}", quote(values[name], safe=""))
    return path


async def _one_request(client, world, data, method, path, params, token) -> tuple[str, httpx.Response | None]:
    """Draw values for one route and send them; (what was sent, the answer)."""
    values = {
        name: data.draw(odd_numbers.map(str) | st.sampled_from(world["ids"]).map(str), label=name)
        if kind == "int"
        else data.draw(odd_text | st.just("learner@north.example"), label=name)
        for name, kind in params
    }
    query_names = data.draw(st.lists(st.sampled_from(QUERY_NAMES), max_size=4, unique=True), label="query names")
    query = {name: data.draw(odd_value(world["ids"]), label=f"?{name}") for name in query_names}
    headers = {}
    if data.draw(st.booleans(), label="htmx"):
        headers["HX-Request"] = "true"
        headers["HX-Target"] = data.draw(st.sampled_from(HX_TARGETS) | header_text, label="HX-Target")
    if path.startswith("/api/"):
        headers["Authorization"] = "Bearer " + data.draw(header_text, label="key")
    url = _url(path, dict(params), values)
    sent = f"{method} {url} query={query!r} headers={headers!r}"
    try:
        if method == "GET":
            return sent, await client.get(url, params=query, headers=headers)
        names = data.draw(st.lists(st.sampled_from(FORM_FIELDS), max_size=8), label="form fields")
        form: dict[str, list[str]] = {}
        for name in names:  # a name drawn twice is sent twice, as checkboxes are
            form.setdefault(name, []).append(data.draw(odd_value(world["ids"]), label=name))
        sent += f" form={form!r}"
        form["_csrf_token"] = [token]
        files = None
        if data.draw(st.booleans(), label="multipart"):
            files = {"upload": ("users.csv", b"email\nx@y.example\n", "text/csv")}
        return sent, await client.post(url, params=query, data=form, files=files, headers=headers)
    except httpx.InvalidURL:
        return sent, None  # a value no client can send: httpx refuses it before the portal sees it


def _signs_out(route: tuple) -> bool:
    return route[1] == "/logout" or route[1].endswith("/deactivate")


# What may sign the manager out (deactivating themselves, signing out) comes last.
ORDERED = sorted(ROUTES, key=_signs_out)


@pytest.mark.parametrize("role", ["partner", "north"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: a failure is reported as drawn (the message names each
    # request), and a broken route does not cost minutes of CI.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_no_input_gets_a_server_error(client, world, role, data):
    """Each example sends one request of generated values to every route."""
    failures = []
    for method, path, params, _ in ORDERED:
        token = await _signed_in(client, world, role)
        sent, response = await _one_request(client, world, data, method, path, params, token)
        if response is None:
            continue
        if response.status_code >= 500:
            failures.append(f"{response.status_code} for {sent}: {response.text[:300]}")
        signed_out = response.status_code in (302, 303) and response.headers.get("location", "").startswith("/login")
        if signed_out or _signs_out((method, path)):
            world["signed_in"] = None
    assert not failures, "\n".join(failures)


def test_every_route_is_fuzzed():
    """The list comes from the app: a new route is fuzzed without anyone adding it here."""
    fuzzed = {path for _, path, *_ in ROUTES}
    assert {
        "/companies",
        "/companies/{company_id:int}",
        "/licences/orders",
        "/api/v1/entitlements/{email:str}",
    } <= fuzzed
    assert any(method == "POST" for method, *_ in ROUTES) and len(ROUTES) >= 30
