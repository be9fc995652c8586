"""The rule a new password must meet (before: length only, so ten spaces passed)."""

from __future__ import annotations

import re

import pytest

from portal.domain import passwords
from portal.domain.access import load_actor
from portal.domain.clock import utcnow
from portal.domain.users import create_user
from tests.factories import _hash
from tests.support import PASSWORD, post_form

EMAIL = "nia.okafor.north@north.example"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        (" " * 10, "not only spaces"),
        ("\t \n" * 4, "not only spaces"),
        ("short", "at least 10 characters"),
        ("x" * 257, "at most 256 characters"),
        ("1234567890", "common passwords"),
        ("qwertyuiop", "common passwords"),
        ("Password123", "common passwords"),  # the list is lower-case; case does not save it
        (EMAIL, "not your e-mail address"),
        (EMAIL.upper(), "not your e-mail address"),
        ("nia.okafor.north", "not your e-mail address"),  # the part before the @
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password, problem):
    assert problem in (passwords.password_problem(password, password, EMAIL) or "")


@pytest.mark.parametrize("password", ["correct horse battery", "  spaces around are fine  ", "Nia-north-2026!"])
def test_reasonable_passwords_pass(password):
    assert passwords.password_problem(password, password, EMAIL) is None


def test_the_repeat_must_match():
    assert passwords.password_problem("correct horse battery", "correct horse batterY", EMAIL) == (
        "The two passwords differ."
    )


async def test_the_set_password_page_refuses_ten_spaces(client, tree):
    actor = await load_actor(tree.managers["partner"]["id"], None)
    _, token = await create_user(actor, tree.north["id"], EMAIL, "Nia Okafor", "manager", utcnow())
    path = f"/set-password/{token}"
    for weak, reason in ((" " * 10, "not only spaces"), ("1234567890", "common passwords"), (EMAIL, "e-mail")):
        answer = await post_form(client, path, path, {"password": weak, "confirm": weak})
        assert answer.status_code == 400 and reason in answer.text
        assert re.search(r'<p class="field-error" id="password-error" role="alert">', answer.text)
    # The link still works after refusals.
    done = await post_form(client, path, path, {"password": "a good long one", "confirm": "a good long one"})
    assert done.status_code in (302, 303)


async def test_hashing_and_checking_run_in_the_pool():
    hashed = await passwords.hash_off_loop("a good long one")
    assert await passwords.verify_off_loop(hashed, "a good long one")
    assert not await passwords.verify_off_loop(hashed, "another one")
    assert not await passwords.verify_off_loop(None, "a good long one")
    assert not await passwords.verify_off_loop("not-a-hash", "a good long one")


async def test_the_portal_hashes_at_argon2ids_production_parameters():
    """The suite's managers carry cheap hashes (tests/factories.py); what the portal
    itself writes keeps the library's production cost, and a cheap hash still verifies."""
    hashed = await passwords.hash_off_loop("a good long one")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert _hash().startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert await passwords.verify_off_loop(_hash(), PASSWORD)
