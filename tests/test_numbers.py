"""A number a person types is ASCII digits and nothing else, read by one function
(portal/domain/numbers.py) wherever a form field, a query parameter or a filter
holds one: Python's int() also takes "٣", "７", "1_000" and "+3", and raises past
4,300 digits, which answered 500 even to a request that was not signed in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.enums import ParamType
from litestar.params import ParameterKwarg

from portal.domain.billing.payments import CardDetails, check_card
from portal.domain.errors import ValidationFailed
from portal.domain.filters import as_int
from portal.domain.numbers import MAX_INT, whole_number
from portal.tables import Company
from portal.tables.billing import BillingProfile, CatalogueItem, Subscription
from portal.web.app import create_app
from portal.web.forms import to_int
from tests.support import post_form, sign_in
from tests.test_words import whole_catalogue

ASCII_DIGITS = "0123456789"
# What int() reads as a number besides ASCII digits: other scripts' digits
# (Arabic-Indic, fullwidth, Devanagari, superscript two, mathematical bold),
# separators, signs, a decimal point, an exponent.
LENIENT = "٣７५²𝟓_+.e"
HUGE = "9" * 5000

ascii_numbers = st.from_regex(r"[0-9]{1,20}", fullmatch=True)
spaces = st.sampled_from(["", " ", "  ", "\t", "\n"])


@settings(max_examples=300, derandomize=True)
@given(ascii_numbers, spaces, spaces)
def test_ascii_digits_read_as_int_reads_them_within_an_integer_column(digits, before, after):
    expected = int(digits) if int(digits) <= MAX_INT else None
    assert whole_number(before + digits + after) == expected
    assert whole_number("-" + digits, signed=True) == (None if expected is None else -expected)
    assert whole_number("-" + digits) is None  # no minus unless the field allows one


@settings(max_examples=300, derandomize=True)
@given(st.text(alphabet=ASCII_DIGITS + LENIENT, min_size=1, max_size=12).filter(lambda t: set(t) & set(LENIENT)))
def test_anything_but_ascii_digits_is_refused_even_what_int_reads(typed):
    assert whole_number(typed) is None
    assert whole_number(typed, signed=True) is None


@settings(max_examples=300, derandomize=True)
@given(st.text(max_size=30))
def test_any_text_is_a_number_only_if_it_is_ascii_digits(typed):
    number = whole_number(typed, signed=True)
    if number is not None:
        body = typed.strip().removeprefix("-")
        assert body and all(ch in ASCII_DIGITS for ch in body)
        assert number == int(typed)


@pytest.mark.parametrize("typed", ["1_000", "٣", "７", "+3", "3.0", "1e3", "", " ", "-", "--1", HUGE, "0" * 21 + "1"])
def test_the_parsers_of_forms_and_filters_refuse_what_is_not_ascii_digits(typed):
    assert whole_number(typed) is None and to_int(typed) is None and as_int(typed) is None


def test_leading_zeros_and_the_largest_id_are_numbers():
    assert whole_number("007") == 7 and to_int(" 2147483647 ") == MAX_INT and whole_number("2147483648") is None
    assert to_int("-5") == -5  # forms pass a minus on, so the field's rule can say "0 or more"


def _routes_with_a_page() -> set[str]:
    """Every route whose handler declares a `page` query parameter."""
    found = set()
    for route in create_app().routes:
        for handler in getattr(route, "route_handlers", []):
            for name, field in handler.parsed_fn_signature.parameters.items():
                kwarg = field.kwarg_definition
                if isinstance(kwarg, ParameterKwarg) and kwarg.param_type == ParamType.QUERY and name == "page":
                    found.add(route.path)
    return found


def list_routes(tree) -> dict[str, str]:
    """Route template → a path of it the partner's manager may open."""
    north = tree.north["id"]
    # The audit log and cursor_routes page from a cursor, not a number; so does the Admin
    # Dashboard's customer table (a customer's id, read leniently: below).
    return {
        "/companies": "/companies",
        "/companies/{company_id:int}": f"/companies/{north}",
        "/dashboard/batches": "/dashboard/batches",
        "/billing": "/billing",
        "/billing/subscriptions": "/billing/subscriptions",
        "/dashboard/pipeline": "/dashboard/pipeline",
        # A webhook endpoint's deliveries: the page number is read before the endpoint is looked for.
        "/settings/webhooks/{endpoint_id:int}": "/settings/webhooks/1",
    }


def cursor_routes(tree) -> list[str]:
    """The lists paged by cursor (tests/test_keyset_lists.py), where a `page` was once read."""
    north = tree.north["id"]
    return [
        f"/companies/{north}/licences",
        f"/companies/{north}/licences?tab=orders",
        f"/companies/{north}/billing",
        "/notifications",
        "/licences/orders",
        "/billing/invoices",
    ]


def test_the_walk_below_covers_every_list_route(tree):
    # The templates of Litestar's routes spell a path id as {company_id:int}.
    assert set(list_routes(tree)) == _routes_with_a_page()


@pytest.mark.parametrize("signed_in", [True, False])
async def test_a_5000_digit_page_or_parent_is_a_400_not_a_500(client, tree, signed_in):
    if signed_in:
        await sign_in(client, tree.email("partner"))
    paths = [*list_routes(tree).values(), "/companies/new"]
    for path in paths:
        name = "parent_id" if path == "/companies/new" else "page"
        for value in (HUGE, f"-{HUGE}", "٣", "1_000"):
            response = await client.get(path, params={name: value})
            assert response.status_code == 400, (path, value[:10], response.status_code)
            assert f"“{name}” must be a whole number from 0 to 2,147,483,647." in response.text
    # A list paged by cursor reads no page: an old address, whatever its number, is the first page.
    for path in cursor_routes(tree):
        for value in (HUGE, f"-{HUGE}", "٣"):
            response = await client.get(path, params={"page": value})
            assert response.status_code == (200 if signed_in else 302), (path, value[:10], response.status_code)
            response = await client.get(path, params={"cursor": value})
            assert response.status_code == (200 if signed_in else 302), (path, value[:10], response.status_code)
    # The dashboard's position is a customer's id after (or before) which its table goes on,
    # like the upload page's page number: both read leniently, a bad one is the first page.
    for name in ("after", "before", "per"):
        for value in (HUGE, f"-{HUGE}", "٣", "1_000", "0"):
            dashboard = await client.get("/dashboard", params={name: value})
            assert dashboard.status_code == (200 if signed_in else 302), (name, value[:10])
    imports = await client.get(f"/companies/{tree.north['id']}/imports", params={"page": HUGE})
    assert imports.status_code == (200 if signed_in else 302)


@pytest.mark.parametrize("typed", ["1_000", "٣", "７", "+3"])
async def test_a_user_count_takes_ascii_digits_only(client, tree, typed):
    await sign_in(client, tree.email("north"))
    purchase = {"tier": "pro", "extra_users": typed, "read_only_users": "0", "method": "online"}
    quote = await client.get(f"/companies/{tree.north['id']}/billing/buy/quote", params=purchase)
    assert quote.status_code == 400 and "Enter a whole number of users (0 or more)." in quote.text
    assert await Subscription.count() == 0


async def test_an_id_typed_in_other_digits_names_no_company(client, tree):
    await sign_in(client, tree.email("partner"))
    fullwidth = str(tree.partner["id"]).translate(str.maketrans(ASCII_DIGITS, "０１２３４５６７８９"))
    refused = await post_form(
        client, "/companies/new", "/companies", {"name": "Wide", "kind": "customer", "parent_id": fullwidth}
    )
    assert refused.status_code == 400 and "Choose where the company stands." in refused.text
    assert await Company.count().where(Company.name == "Wide") == 0


@pytest.mark.parametrize("number", ["4242 4242 4242 424²", "4242 4242 4242 ４２４２", "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"])
def test_a_card_number_is_ascii_digits_spaces_and_dashes(number):
    with pytest.raises(ValidationFailed) as refused:
        check_card(CardDetails(number=number, exp_month=12, exp_year=2040, cvc="123"))
    assert set(refused.value.errors) == {"card"}


def test_a_security_code_is_ascii_digits():
    with pytest.raises(ValidationFailed) as refused:
        check_card(CardDetails(number="4242 4242 4242 4242", exp_month=12, exp_year=2040, cvc="١٢٣"))
    assert set(refused.value.errors) == {"cvc"}


@pytest.mark.parametrize("typed", ["٣", "1_000", "７.5"])
async def test_a_price_and_a_tax_rate_take_ascii_digits_only(client, tree, typed):
    await sign_in(client, tree.email("sub"))
    rate = await post_form(client, "/billing/settings", "/billing/settings", {"currency": "USD", "tax_rate": typed})
    assert rate.status_code == 400 and "Enter the tax rate in per cent, for example 8.25 (or 0)." in rate.text
    assert await BillingProfile.count().where(BillingProfile.tax_rate_bp != 0) == 0
    catalogue = whole_catalogue((await client.get("/billing/settings")).text)
    price = await post_form(client, "/billing/settings", "/billing/catalogue", catalogue | {"price.pro": typed})
    assert price.status_code == 400 and "Enter a price such as 6000.00." in price.text
    pro = await CatalogueItem.select().where((CatalogueItem.partner == tree.sub["id"]) & (CatalogueItem.code == "pro"))
    assert [row["price_cents"] for row in pro] == [6_000_00]


async def test_an_id_in_the_address_is_ascii_digits_only(client, tree):
    await sign_in(client, tree.email("partner"))
    north = str(tree.north["id"])
    assert (await client.get(f"/companies/{north}/licences")).status_code == 200
    for typed in (north.translate(str.maketrans(ASCII_DIGITS, "٠١٢٣٤٥٦٧٨٩")), f"+{north}", f"0_{north}", HUGE):
        response = await client.get(f"/companies/{typed}/licences")
        assert response.status_code == 404, typed[:10]
        assert "There is nothing at this address." in response.text
