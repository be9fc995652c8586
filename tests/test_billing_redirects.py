"""A refused subscription action goes back to the page it came from, only if that is a
page of this site: a Referer of our own origin
followed by "//evil.example" is not a way to send the user elsewhere."""

from __future__ import annotations

import pytest

from portal.domain.billing import subscriptions
from tests.support import PROCESSOR, csrf_of, sign_in
from tests.test_billing_subscriptions import NOW, actors, pro


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("/companies/3/billing", "/companies/3/billing"),
        ("/billing?customer=3", "/billing?customer=3"),
        ("//evil.example/x", ""),
        ("/\\evil.example", ""),
        ("https://evil.example/", ""),
        ("evil.example", ""),
        ("  /ok ", "/ok"),
        ("", ""),
    ],
)
def test_local_path_keeps_only_paths_of_this_site(path, local):
    from portal.web.redirects import local_path  # here: the web test below runs without it too

    assert local_path(path) == local


async def test_a_refusal_never_redirects_off_the_site(client, tree):
    customer, _ = await actors(tree)
    bought = await subscriptions.buy(customer, tree.north["id"], pro(0, "invoice", 0), NOW, processor=PROCESSOR)
    await sign_in(client, tree.email("north"))
    page = f"/companies/{tree.north['id']}/billing/subscriptions"
    token = csrf_of((await client.get(page)).text)
    origin = str(client.base_url).rstrip("/")
    action = f"/billing/subscriptions/{bought['subscription']['id']}/cancel"  # Cancel is for Pay Online: refused
    for referer, back in (
        (f"{origin}//evil.example/x", "/"),
        (f"{origin}/\\evil.example", "/"),
        (f"{origin}{page}", page),
        ("https://evil.example/x", "/"),
    ):
        refused = await client.post(action, data={"_csrf_token": token}, headers={"referer": referer})
        assert (refused.status_code, refused.headers["location"]) == (302, back)
