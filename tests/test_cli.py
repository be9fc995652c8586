"""The `portal` command, run as an operator would: in a subprocess, against the
test database (the environment conftest.py set up)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import sys

import httpx
import pytest
from arq.connections import RedisSettings, create_pool

from portal.cli import uvicorn_options
from portal.domain.clock import utcnow
from portal.domain.outbox import queue_email
from portal.domain.users import token_owner
from portal.settings import get_settings
from portal.tables import AuditEntry, Company, User
from tests.factories import T0
from tests.redis_server import free_port
from tests.support import csrf_of

DEADLINE = 60.0
LINK = re.compile(r"(http://\S+)/set-password/(\S+)")


async def portal(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portal.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    return proc.returncode, out.decode(), err.decode()


async def test_create_partner_makes_a_top_partner_and_prints_a_set_password_link():
    code, out, err = await portal(
        "create-partner", "--name", "  Contoso   MSP ", "--manager-email", "Ops.Lead@Contoso.example"
    )
    assert code == 0, err
    [company] = await Company.select().where(Company.parent.is_null())
    assert (company["name"], company["kind"], company["path"]) == ("Contoso MSP", "partner", f"/{company['id']}/")
    [manager] = await User.select().where(User.company == company["id"])
    assert (manager["email"], manager["name"], manager["role"]) == (
        "ops.lead@contoso.example",
        "Ops.Lead",
        "partner_admin",
    )
    assert manager["password_hash"] is None  # nobody chose it for them

    base_url, token = LINK.search(out).groups()
    assert base_url == get_settings().base_url
    assert (await token_owner(token, utcnow()))["email"] == "ops.lead@contoso.example"
    [entry] = await AuditEntry.select().where(AuditEntry.action == "partner.create")
    assert entry["company"] == company["id"]
    assert "Demo logins" not in out


async def test_create_partner_with_a_manager_name():
    code, _, err = await portal(
        "create-partner", "--name", "Fabrikam", "--manager-email", "kim@fabrikam.example", "--manager-name", "Kim Park"
    )
    assert code == 0, err
    assert await User.select(User.name).where(User.email == "kim@fabrikam.example").first() == {"name": "Kim Park"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--name", "Acme MSP", "--manager-email", "new@acme.example"], "already a top partner named Acme MSP"),
        (["--name", "acme msp", "--manager-email", "new@acme.example"], "already a top partner named acme msp"),
        (
            ["--name", "Fresh MSP", "--manager-email", "manager@partner.example"],
            "--manager-email: manager@partner.example already has an account",
        ),
        (
            ["--name", "Fresh MSP", "--manager-email", "not-an-address"],
            "--manager-email: An email address must have an @-sign",
        ),
        (["--name", "   ", "--manager-email", "new@fresh.example"], "--name: Give the partner's name"),
        (["--name", "Bad\x07Name", "--manager-email", "new@fresh.example"], "control character"),
    ],
)
async def test_create_partner_refuses_bad_input_and_writes_nothing(tree, args, message):
    companies, users = await Company.count(), await User.count()
    code, out, err = await portal("create-partner", *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert (await Company.count(), await User.count()) == (companies, users)


async def test_outbox_says_how_many_e_mails_wait_and_since_when(tree):
    code, out, err = await portal("outbox")
    assert code == 0, err
    assert "Outbox: 0 e-mail(s) queued; oldest waiting: none waiting." in out
    await queue_email("test", tree.direct["id"], ["a@x.example", "b@x.example"], "Hello", "Hi", utcnow(), "cli-test")
    code, out, err = await portal("outbox")
    assert code == 0, err
    assert "Outbox: 2 e-mail(s) queued; oldest waiting: " in out and "none waiting" not in out


async def test_worker_without_redis_says_what_it_needs():
    code, _, err = await portal("worker", env={"REDIS_URL": ""})
    assert code == 2 and "REDIS_URL" in err


@pytest.mark.parametrize("command", [("serve", "--no-demo"), ("worker",)])
async def test_a_bad_smtp_url_stops_serve_and_worker_with_the_reason(command):
    code, out, err = await portal(*command, env={"SMTP_URL": "smtp://"})
    assert code == 2 and "SMTP_URL is not usable" in err and "Traceback" not in err + out


async def test_worker_runs_jobs_and_stops_cleanly_on_sigterm(tree):
    redis_url = os.environ["PORTAL_TEST_REDIS"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portal.cli",
        "worker",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "REDIS_URL": redis_url, "LOG_FORMAT": "json"},
    )
    try:
        started = await _read_until(proc.stderr, lambda entry: entry.get("event") == "worker started")
        assert "record_sign_in" in started["functions"]
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        await pool.enqueue_job("record_sign_in", tree.managers["direct"]["id"], tree.direct["id"], T0, _job_id="cli-1")
        await pool.aclose()
        # Other jobs (the e-mail crons) log too: wait for this one's line.
        finished = await _read_until(
            proc.stderr, lambda entry: entry.get("event") == "job finished" and entry.get("job_id") == "cli-1"
        )
        assert finished["job"] == "record_sign_in"
        assert await AuditEntry.count().where(AuditEntry.action == "sign_in") == 1
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _read_until(stream: asyncio.StreamReader, wanted) -> dict:
    """The first JSON log line `wanted` accepts; every line must be JSON."""
    while True:
        line = await asyncio.wait_for(stream.readline(), DEADLINE)
        assert line, "the process ended first"
        entry = json.loads(line)
        if wanted(entry):
            return entry


@pytest.mark.parametrize("no_demo", [True, False])
async def test_serve_prints_demo_logins_only_when_demo_data_is_there(no_demo):
    port = free_port()
    env = {"PORT": str(port), "BASE_URL": f"http://127.0.0.1:{port}", "PYTHONUNBUFFERED": "1"}
    args = ["serve", "--no-demo"] if no_demo else ["serve"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portal.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    try:
        # The banner is printed before uvicorn starts: once it answers, all of it is out.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await _first_answer(client, "/healthz", proc)
        assert response.status_code == 200 and response.headers["X-Request-ID"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
    banner = out.decode()
    assert f"License Portal on http://127.0.0.1:{port}" in banner
    if no_demo:
        assert "Demo logins" not in banner and "licences-demo" not in banner
        assert await Company.count() == 0
    else:
        assert "Demo logins (password: licences-demo)" in banner
        assert "alex.morgan@northwind-msp.example" in banner


async def _first_answer(client: httpx.AsyncClient, path: str, proc) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        try:
            return await client.get(path)
        except httpx.TransportError:
            if loop.time() > deadline or proc.returncode is not None:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("trusted", [False, True])
async def test_serve_believes_x_forwarded_for_only_from_a_trusted_proxy(trusted):
    """The attack on the sign-in limiter: a client rotating X-Forwarded-For to dodge the
    per-address sign-in limit. Untrusted (the default), every try counts against
    the real peer and the limit answers 429; from a proxy named in
    FORWARDED_ALLOW_IPS, each forwarded address is counted on its own."""
    port = free_port()
    env = {"PORT": str(port), "BASE_URL": f"http://127.0.0.1:{port}", "FORWARDED_ALLOW_IPS": ""}
    if trusted:
        env["FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portal.cli",
        "serve",
        "--no-demo",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            opened = await _first_answer(client, "/login", proc)
            token = csrf_of(opened.text)
            statuses = []
            for n in range(12):  # more than the 10 a minute one address may try
                answer = await client.post(
                    "/login",
                    data={"email": f"guess{n}@example.com", "password": "wrong-password-1", "_csrf_token": token},
                    headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
                )
                statuses.append(answer.status_code)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), DEADLINE)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if trusted:
        assert 429 not in statuses, statuses
    else:
        assert statuses[-1] == 429, statuses


def test_serve_trusts_no_proxy_headers_unless_told():
    settings = dataclasses.replace(get_settings(), forwarded_allow_ips=None)
    assert uvicorn_options(settings, 1)["proxy_headers"] is False
    told = uvicorn_options(dataclasses.replace(settings, forwarded_allow_ips="10.0.0.5,10.0.0.6"), 2)
    assert (told["proxy_headers"], told["forwarded_allow_ips"], told["workers"]) == (True, "10.0.0.5,10.0.0.6", 2)
