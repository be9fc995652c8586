"""Pages while Redis (sessions, the sign-in limiter) is away: a 503 that says
the service is briefly unavailable, with Retry-After, not a 500; and everything
works again once Redis is back. A Redis server of the test's own is stopped,
never the run's shared one."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from portal.settings import get_settings
from portal.web.app import create_app
from tests.redis_server import RedisServer
from tests.support import PASSWORD, csrf_of, running, sign_in

pytestmark = pytest.mark.redis


@pytest.fixture
async def outage(tmp_path):
    """An app on a Redis of its own, and that Redis, to stop and start."""
    server = RedisServer(tmp_path / "redis").start()
    settings = replace(get_settings(), redis_url=f"{server.url}/0")
    try:
        async with running(create_app(settings, sign_ins_per_minute=1000)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                yield client, server
    finally:
        server.stop()


def assert_briefly_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text[:300]
    assert response.headers["Retry-After"].isdigit()
    assert "briefly unavailable" in response.text


async def test_signed_in_pages_and_sign_in_say_briefly_unavailable_while_redis_is_away(tree, outage):
    client, server = outage
    await sign_in(client, tree.email("north"))
    form = csrf_of((await client.get("/login")).text)
    server.stop()

    assert_briefly_unavailable(await client.get("/"))
    assert_briefly_unavailable(await client.get("/", headers={"HX-Request": "true"}))
    signing_in = {"email": tree.email("north"), "password": PASSWORD, "_csrf_token": form}
    assert_briefly_unavailable(await client.post("/login", data=signing_in))

    server.start()  # the same port, empty: the session is gone, signing in works again
    await sign_in(client, tree.email("north"))
    assert (await client.get("/", follow_redirects=True)).status_code == 200
