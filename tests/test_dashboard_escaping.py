"""The Admin Dashboard's customer rows are escaped by hand (the name once per
row, for speed: templates/partials/dashboard/_customers.html): a customer named
like markup shows as text there, in its link, its data attribute and every
figure's label."""

from __future__ import annotations

from portal import db
from portal.domain.companies import insert_company
from tests.factories import T0
from tests.support import sign_in

HOSTILE = 'Evil "><img src=x onerror=alert(1)> & <script>alert(2)</script>'


async def test_a_customer_named_like_markup_shows_as_text_on_the_dashboard(client, tree):
    async with db.write_transaction():
        await insert_company(HOSTILE, "customer", tree.partner, T0)
    await sign_in(client, tree.email("partner"))
    page = await client.get("/dashboard", params={"q": "Evil"})
    assert page.status_code == 200
    assert "<img" not in page.text and "<script>alert" not in page.text
    escaped = "Evil &#34;&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &lt;script&gt;alert(2)&lt;/script&gt;"
    assert page.text.count(escaped) >= 3  # the link, the row's data attribute, the figures' labels
