"""The one writer of the "provision:<invoice>" claim, shared by a payment
(settlement.provision_invoice) and the renewal job (next_term.record): set-based,
first writer wins, in the caller's transaction. Both engines."""

from __future__ import annotations

from portal import db
from portal.domain.access import load_actor
from portal.domain.billing.provision_claims import ACTION, Claim, claim
from portal.tables import AuditEntry
from tests.factories import T0


def _invoice(invoice_id: int, company: dict, total_cents: int = 1_000) -> dict:
    return {
        "id": invoice_id,
        "company": company["id"],
        "kind": "renewal",
        "total_cents": total_cents,
        "currency": "USD",
    }


async def _entries() -> list[dict]:
    return (
        await AuditEntry.select(
            AuditEntry.dedupe_key, AuditEntry.actor, AuditEntry.acting_as, AuditEntry.company, AuditEntry.detail
        )
        .where(AuditEntry.action == ACTION)
        .order_by(AuditEntry.id)
        .output(load_json=True)
    )


async def test_the_first_claim_wins_and_a_later_one_on_the_same_invoice_gets_nothing(tree):
    partner = await load_actor(tree.managers["partner"]["id"], tree.north["id"])
    assert partner is not None
    async with db.write_transaction():
        won = await claim([Claim(_invoice(7, tree.north), partner), Claim(_invoice(8, tree.north))], T0)
    assert won == {7, 8}

    async with db.write_transaction():
        again = await claim(
            [Claim(_invoice(8, tree.north, total_cents=5), detail={"seats": 3}), Claim(_invoice(9, tree.direct))], T0
        )
    assert again == {9}
    assert await _entries() == [
        {
            "dedupe_key": "provision:7",
            "actor": partner.user_id,
            "acting_as": tree.north["id"],
            "company": tree.north["id"],
            "detail": {"invoice": 7, "kind": "renewal", "total_cents": 1_000, "currency": "USD"},
        },
        # The first claim's words stay: the second one wrote nothing.
        {
            "dedupe_key": "provision:8",
            "actor": None,
            "acting_as": None,
            "company": tree.north["id"],
            "detail": {"invoice": 8, "kind": "renewal", "total_cents": 1_000, "currency": "USD"},
        },
        {
            "dedupe_key": "provision:9",
            "actor": None,
            "acting_as": None,
            "company": tree.direct["id"],
            "detail": {"invoice": 9, "kind": "renewal", "total_cents": 1_000, "currency": "USD"},
        },
    ]


async def test_a_claim_in_the_same_transaction_finds_the_first(tree):
    async with db.write_transaction():
        assert await claim([Claim(_invoice(1, tree.north))], T0) == {1}
        assert await claim([Claim(_invoice(1, tree.north))], T0) == set()
    assert await claim([], T0) == set()


async def test_more_claims_than_one_statement_holds_are_all_written(tree):
    many = [Claim(_invoice(n, tree.north), detail={"seats": n}) for n in range(1, 2_502)]
    async with db.write_transaction():
        assert await claim(many[:10], T0) == set(range(1, 11))
        assert await claim(many, T0) == set(range(11, 2_502))
    assert await AuditEntry.count().where(AuditEntry.action == ACTION) == 2_501
