"""Passkeys refused: no challenge, a forged answer, another user's passkey, another
user's passkey id to remove. (Chromium makes and uses real ones in
tests/test_passkey_browser.py.)"""

from __future__ import annotations

import json

import pytest

from portal.domain.clock import utcnow
from portal.domain.errors import SignInRefused
from portal.domain.two_factor import passkeys
from portal.tables.sign_in import Passkey
from tests.support import post_form, sign_in

RP = passkeys.RelyingParty.for_base_url("http://localhost:8000")
CREDENTIAL_ID = "AAECAwQFBgcICQoLDA0ODw"


def _answer(credential_id: str = CREDENTIAL_ID) -> str:
    return json.dumps(
        {
            "id": credential_id,
            "rawId": credential_id,
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA"},
            "clientExtensionResults": {},
        }
    )


async def _passkey_of(user: dict) -> int:
    rows = await Passkey.insert(
        Passkey(user=user["id"], credential_id=CREDENTIAL_ID, public_key="AAAA", name="Laptop", created_at=utcnow())
    ).returning(Passkey.id)
    return rows[0]["id"]


def test_the_relying_party_is_the_portals_own_address():
    assert RP.id == "localhost" and RP.origin == "http://localhost:8000"


async def test_a_forged_answer_signs_nobody_in(client, tree):
    await _passkey_of(tree.managers["north"])
    page = await client.get("/login/passkey")
    assert page.status_code == 200 and 'data-passkey="get"' in page.text
    refused = await post_form(client, "/login/passkey", "/login/passkey", {"credential": _answer()})
    assert refused.status_code == 400 and "not accepted" in refused.text
    assert (await client.get("/profile")).status_code in (302, 303)
    # Garbage, or no challenge asked for first, is refused alike.
    assert (await post_form(client, "/login/passkey", "/login/passkey", {"credential": "{"})).status_code == 400
    client.cookies.clear()
    opened = await client.get("/login")  # a form token, but no challenge
    token = opened.text.split('name="_csrf_token" value="')[1].split('"')[0]
    assert (
        await client.post("/login/passkey", data={"credential": _answer(), "_csrf_token": token})
    ).status_code == 400


async def test_another_users_passkey_is_no_second_factor(tree):
    await _passkey_of(tree.managers["north"])
    with pytest.raises(SignInRefused):
        await passkeys.authenticate(RP, _answer(), b"challenge", utcnow(), tree.managers["direct"]["id"])


async def test_a_manager_cannot_remove_another_managers_passkey(client, tree):
    theirs = await _passkey_of(tree.managers["north"])
    await sign_in(client, tree.email("direct"))
    await post_form(client, "/profile", f"/two-factor/passkeys/{theirs}/remove", {})
    assert "No such passkey of yours." in (await client.get("/profile")).text
    assert await Passkey.count() == 1
