import hashlib
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"


async def test_healthz_reports_database_and_queue(app, client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok" and body["queue"] == "ok"
    assert body["queue_kind"] == ("arq" if app.state.settings.redis_url else "in-process")


async def test_healthz_says_when_the_queue_is_unreachable(app, client):
    class DeadQueue:
        async def ping(self):
            return False

    app.state.jobs, alive = DeadQueue(), app.state.jobs
    try:
        response = await client.get("/healthz")
    finally:
        app.state.jobs = alive
    assert response.status_code == 503
    assert response.json()["queue"] == "unreachable"


def test_vendored_htmx_matches_its_recorded_sha256():
    recorded = (STATIC / "VENDORED.md").read_text()
    digest = hashlib.sha256((STATIC / "htmx-2.0.11.min.js").read_bytes()).hexdigest()
    assert digest in recorded


async def test_pages_vary_on_hx_request(client):
    response = await client.get("/login")
    assert response.headers["vary"] == "HX-Request, HX-Target, HX-History-Restore-Request"
    assert '<script src="/static/htmx-2.0.11.min.js"' in response.text
    assert (await client.get("/static/htmx-2.0.11.min.js")).status_code == 200
