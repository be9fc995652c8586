"""Read-only managers (seed 000's read-only user credits): they see their
company's pages and every change they try is refused; the credits bought cap
how many a company may have."""

from __future__ import annotations

import asyncio

import pytest

from portal.domain import users
from portal.domain.access import load_actor
from portal.domain.errors import ValidationFailed
from portal.tables import OutboxEmail, User
from portal.tables.billing import Subscription
from tests.factories import T0, _hash
from tests.support import PASSWORD, post_form, sign_in


async def _credits(company: dict, read_only_users: int) -> None:
    """A live subscription holding `read_only_users` credits, as buying one leaves it."""
    await Subscription.insert(
        Subscription(
            company=company["id"],
            company_path=company["path"],
            partner=company["parent"],
            tier="pro",
            read_only_users=read_only_users,
            method="invoice",
            status="active",
            term_start=T0,
            term_end=T0.replace(year=T0.year + 1),
        )
    )


async def _read_only_manager(tree, email: str = "viewer@north.example") -> dict:
    row = (
        await User.insert(
            User(
                company=tree.north["id"],
                email=email,
                name="Vera Viewer",
                role="read_only",
                password_hash=_hash(),
                created_at=T0,
            )
        )
    )[0]
    return {"id": row["id"], "email": email}


async def test_read_only_managers_are_capped_by_the_credits_bought(tree):
    partner = await load_actor(tree.managers["partner"]["id"], None)
    customer = await load_actor(tree.managers["north"]["id"], None)
    with pytest.raises(ValidationFailed, match="North Customer has no read-only user credits"):
        await users.create_user(customer, tree.north["id"], "a@north.example", "A", "read_only", T0)

    await _credits(tree.north, 2)
    first, token = await users.create_user(customer, tree.north["id"], "a@north.example", "A", "read_only", T0)
    assert first["role"] == "read_only" and token  # invited to choose a password, like a manager
    invitation = await OutboxEmail.select(OutboxEmail.subject).where(OutboxEmail.to_email == "a@north.example").first()
    assert invitation["subject"] == "You are a read-only manager of North Customer on the License Portal"

    # Two at once for the last credit: one gets it.
    results = await asyncio.gather(
        users.create_user(partner, tree.north["id"], "b@north.example", "B", "read_only", T0),
        users.create_user(customer, tree.north["id"], "c@north.example", "C", "read_only", T0),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ValidationFailed)]
    assert len(refused) == 1 and "2 read-only user credits, all in use" in str(refused[0])
    assert await User.count().where((User.company == tree.north["id"]) & (User.role == "read_only")) == 2

    # A partner's or sub-partner's read-only staff are a staff role, not a customer's credit.
    staff, _ = await users.create_user(partner, tree.sub["id"], "d@acme.example", "D", "read_only", T0)
    assert staff["role"] == "read_only"
    assert await users.holds_read_only_credit(staff["id"], tree.sub["id"])


async def test_a_read_only_manager_sees_pages_and_every_change_is_refused(client, tree):
    await _credits(tree.north, 1)
    viewer = await _read_only_manager(tree)
    await sign_in(client, viewer["email"])  # asserts the redirect of a signed-in user

    page = await client.get(f"/companies/{tree.north['id']}/licences")
    assert page.status_code == 200
    assert "Read-only access: you see what North Customer's managers see" in page.text
    assert (await client.get(f"/companies/{tree.other_customer['id']}/licences")).status_code == 404

    refused = await post_form(
        client,
        f"/companies/{tree.north['id']}/users/new",
        f"/companies/{tree.north['id']}/users",
        {"name": "Sneaky", "email": "sneaky@north.example", "role": "learner"},
    )
    assert refused.status_code == 403
    assert "You have read-only access to North Customer" in refused.text
    assert not await User.exists().where(User.email == "sneaky@north.example")

    # Signing out is not a change to the company: it works.
    out = await post_form(client, "/profile", "/logout", {})
    assert (out.status_code, out.headers["location"]) == (302, "/login")
    assert (await client.get(f"/companies/{tree.north['id']}/licences")).headers["location"].startswith("/login")


async def test_fewer_credits_leave_the_oldest_read_only_managers_their_access(client, tree):
    """After a renewal with fewer read-only credits (or a lapse), the read-only
    managers beyond them can no longer sign in, and a session they hold ends."""
    await _credits(tree.north, 2)
    first = await _read_only_manager(tree, "first@north.example")
    second = await _read_only_manager(tree, "second@north.example")
    await sign_in(client, second["email"])
    assert (await client.get(f"/companies/{tree.north['id']}/licences")).status_code == 200

    await Subscription.update({Subscription.read_only_users: 1}, force=True)
    ended = await client.get(f"/companies/{tree.north['id']}/licences")
    assert ended.headers["location"].startswith("/login")
    refused = await post_form(client, "/login", "/login", {"email": second["email"], "password": PASSWORD})
    assert refused.status_code == 400 and "Your read-only access has ended" in refused.text
    await sign_in(client, first["email"])  # the oldest keeps the one credit left

    await Subscription.update({Subscription.status: "lapsed"}, force=True)
    assert (await client.get(f"/companies/{tree.north['id']}/licences")).headers["location"].startswith("/login")
