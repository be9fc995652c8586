"""Renewal by CSV through HTTP: "Select Users by CSV" → "Import Licence Renewal"
→ upload → column → counts and reasons → "Renew Licences" → result and
downloads; refusals on the form; CSRF; another tenant's import; the job path
with its self-replacing progress fragment (arq worker on PostgreSQL, the
in-process queue on SQLite)."""

from __future__ import annotations

import csv
import dataclasses
import io
import os

import httpx
import pytest

from portal.domain.clock import utcnow
from portal.domain.imports import limits
from portal.jobs import queue as job_queue
from portal.jobs.imports import IMPORT_FUNCTIONS
from portal.services import build_services
from portal.settings import get_settings
from portal.tables import Allocation, User
from portal.tables.imports import CsvImport
from portal.web.app import create_app
from tests.factories import add_user
from tests.support import csrf_of, run_burst_worker, running, sign_in
from tests.test_imports_domain import EXPECTED, FILE, FILES, setup_north

HTMX = {"HX-Request": "true"}


async def upload(client, company_id: int, content: bytes, name: str = "users.csv", token: bool = True):
    page = await client.get(f"/companies/{company_id}/imports")
    data = {"_csrf_token": csrf_of(page.text)} if token else {}
    return await client.post(f"/companies/{company_id}/imports", data=data, files={"file": (name, content, "text/csv")})


async def form_post(client, page: str, action: str, data: dict):
    opened = await client.get(page)
    return await client.post(action, data={**data, "_csrf_token": csrf_of(opened.text)})


async def test_select_users_by_csv_to_renew_licences(client, tree):
    running = await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    tab = await client.get(f"/companies/{north}/licences?tab=expired")
    assert f'href="/companies/{north}/imports"' in tab.text and "Select Users by CSV" in tab.text
    page = await client.get(f"/companies/{north}/imports")
    assert "Import Licence Renewal" in page.text and 'type="file"' in page.text

    done = await upload(client, north, FILE.encode("cp1252"))
    assert done.status_code in (302, 303), done.text[:500]
    here = done.headers["location"]
    shown = await client.get(here)
    assert 'data-testid="renew-count">3<' in shown.text and "users identified for renewal" in shown.text
    assert 'data-testid="not-renewed-count">4<' in shown.text and "users not renewed" in shown.text
    assert '<option value="1" selected>E-mail</option>' in shown.text
    assert "Listed twice" in shown.text and "No free seat" in shown.text and "(3 seats free)" in shown.text
    assert "Eve Zero" in shown.text  # the first rows

    renewed = await form_post(client, here, f"{here}/renew", {})
    assert renewed.status_code in (302, 303)
    result = await client.get(here)
    assert 'data-testid="import-result"' in result.text and 'data-testid="renew-count">3<' in result.text
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 4
    listing = await client.get(f"/companies/{north}/imports")
    assert "users.csv" in listing.text and "3 renewed" in listing.text

    download = await client.get(f"{here}/rows.csv")
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["Line", "Cell", "E-mail address", "Reason"]
    assert len(rows) - 1 == sum(EXPECTED.values()) - EXPECTED["renew"]
    assert ["9", "not an address", "", "Not an e-mail address"] in rows


async def test_choosing_a_column_without_addresses_is_refused_on_the_page(client, tree):
    await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    here = (await upload(client, north, FILE.encode("cp1252"))).headers["location"]
    refused = await form_post(client, here, f"{here}/column", {"column": "0"})
    assert refused.status_code == 400 and "holds no e-mail addresses" in refused.text
    again = await client.get(here)
    assert 'data-testid="renew-count">3<' in again.text  # the earlier choice stands


async def test_uploads_refused_with_the_forms_message(client, tree):
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    kept_before = set(FILES.directory.glob("*"))
    for content, message in [
        (b"", "Choose a CSV file"),  # no file chosen at all: the browser sends an empty part
        (b"\n\n  \n", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00", "save it as CSV"),
        (b"Name,Phone\nAnn,123\n", "No column of this file holds e-mail addresses"),
    ]:
        answer = await upload(client, north, content, name="" if not content else "f.csv")
        assert answer.status_code == 400 and message in answer.text, (content, answer.text[:300])
        assert 'type="file"' in answer.text
    too_big = b"someone@north.example\n" * (FILES.max_bytes // 22 + 4000)
    answer = await upload(client, north, too_big)
    assert answer.status_code == 413 and "the largest accepted" in answer.text and 'type="file"' in answer.text
    assert await CsvImport.count() == 0
    assert set(FILES.directory.glob("*")) == kept_before  # nothing of the refused files is kept


async def test_upload_without_csrf_is_refused(client, tree):
    await sign_in(client, tree.email("north"))
    answer = await upload(client, tree.north["id"], FILE.encode(), token=False)
    assert answer.status_code == 403 and "This form was open too long or came from another site" in answer.text
    assert await CsvImport.count() == 0


async def test_another_tenants_import_answers_404(client, tree):
    await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    here = (await upload(client, north, FILE.encode())).headers["location"]
    import_id = here.rsplit("/", 1)[1]
    client.cookies.clear()
    await sign_in(client, tree.email("other"))
    assert (await client.get(here)).status_code == 404
    assert (await client.get(f"{here}/rows.csv")).status_code == 404
    own = tree.other_customer["id"]
    assert (await client.get(f"/companies/{own}/imports/{import_id}")).status_code == 404
    for action in ("refresh", "renew", "column"):
        assert (await form_post(client, f"/companies/{own}/imports", f"{here}/{action}", {})).status_code == 404
    assert (await client.get(f"/companies/{north}/learners.csv")).status_code == 404


async def test_learners_export_neutralises_formulas(client, tree):
    await add_user(tree.north, "formula@north.example", role="learner", name='=HYPERLINK("http://x")')
    await add_user(tree.north, "plain@north.example", role="learner", name="Plain Person")
    await sign_in(client, tree.email("north"))
    download = await client.get(f"/companies/{tree.north['id']}/learners.csv")
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["Name", "E-mail", "Role", "Status", "License ends"]
    assert ['\'=HYPERLINK("http://x")', "formula@north.example", "Learner", "Unlicensed", ""] in rows
    assert ["Plain Person", "plain@north.example", "Learner", "Unlicensed", ""] in rows


async def run_import_jobs(app, monkeypatch) -> None:
    """Whatever queue the app has: a burst arq worker with the import task on
    Redis, or the in-process queue (with the task registered as the integrator will)."""
    if os.environ.get("REDIS_URL"):
        await run_burst_worker(IMPORT_FUNCTIONS, os.environ["REDIS_URL"], ctx={"services": app.state.services})
    else:
        await app.state.jobs.drain()


async def test_a_big_import_runs_as_a_job_with_a_progress_fragment(app, client, tree, monkeypatch):
    running = await setup_north(tree, now=utcnow())
    monkeypatch.setattr(limits, "JOB_ROWS", 0)
    monkeypatch.setitem(job_queue.TASKS, "apply_import", IMPORT_FUNCTIONS[0])
    await sign_in(client, tree.email("north"))
    here = (await upload(client, tree.north["id"], FILE.encode())).headers["location"]
    if os.environ.get("REDIS_URL"):
        await form_post(client, here, f"{here}/renew", {})
        waiting = await client.get(here)
        assert 'hx-trigger="load delay:500ms"' in waiting.text and 'hx-swap="outerHTML"' in waiting.text
        polled = await client.get(f"{here}/progress", headers={**HTMX, "HX-Target": "import-progress"})
        assert "<html" not in polled.text and "Renewing 3 users" in polled.text
    else:
        await form_post(client, here, f"{here}/renew", {})
    await run_import_jobs(app, monkeypatch)
    polled = await client.get(f"{here}/progress", headers={**HTMX, "HX-Target": "import-progress"})
    assert 'data-testid="import-result"' in polled.text and "hx-trigger" not in polled.text
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 4
    e0 = await User.select(User.licence_ends_at).where(User.email == "e0@north.example").first()
    assert e0["licence_ends_at"] == running["ends_at"]


async def test_a_file_over_the_limit_answers_the_whole_page_and_a_smaller_one_goes_through(client, tree):
    await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    too_big = b"someone@north.example\n" * (FILES.max_bytes // 22 + 4000)
    refused = await upload(client, north, too_big)
    assert refused.status_code == 413 and "the largest accepted" in refused.text
    assert "North Customer" in refused.text and "Sign out" in refused.text  # the company and the navigation
    assert await CsvImport.count() == 0
    # The form on the 413 page works: no "Form expired" for the smaller file.
    token = csrf_of(refused.text)
    smaller = await client.post(
        f"/companies/{north}/imports",
        data={"_csrf_token": token},
        files={"file": ("users.csv", FILE.encode(), "text/csv")},
    )
    assert smaller.status_code in (302, 303), smaller.text[:500]
    assert await CsvImport.count() == 1


async def test_an_upload_with_a_wrong_csrf_token_is_refused(client, tree):
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    page = await client.get(f"/companies/{north}/imports")
    token = csrf_of(page.text)
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    for data in ({"_csrf_token": forged}, {"_csrf_token": ""}, {}):
        answer = await client.post(f"/companies/{north}/imports", data=data, files={"file": ("u.csv", FILE.encode())})
        assert answer.status_code == 403 and "Form expired" in answer.text, data
    assert await CsvImport.count() == 0
    # The input guard still runs on the upload.
    page = await client.get(f"/companies/{north}/imports")
    answer = await client.post(
        f"/companies/{north}/imports",
        data={"_csrf_token": csrf_of(page.text), "note": "a\x01b"},
        files={"file": ("u.csv", FILE.encode())},
    )
    assert answer.status_code == 400 and await CsvImport.count() == 0


async def test_the_preview_counts_people_and_rows_apart_and_offers_the_rows_not_renewed(client, tree):
    await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    here = (await upload(client, tree.north["id"], FILE.encode())).headers["location"]
    shown = await client.get(here)
    # 9 rows: 3 renewed; of the 6 others, 4 are people (1 active, 2 unknown, 1 past the free seats),
    # 1 repeats an address and 1 holds none.
    assert 'data-testid="renew-count">3<' in shown.text
    assert 'data-testid="not-renewed-count">4<' in shown.text and "users not renewed" in shown.text
    assert 'data-testid="not-renewed-rows">6<' in shown.text
    assert f'href="{here}/rows.csv" data-testid="not-renewed-csv"' in shown.text  # before "Renew Licences"
    download = await client.get(f"{here}/rows.csv")
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert len(rows) - 1 == 6


async def test_a_preview_made_stale_by_a_renewal_elsewhere_is_said_and_counted_again_before_renewing(client, tree):
    running = await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    here = (await upload(client, north, FILE.encode())).headers["location"]
    listing = await client.get(f"/companies/{north}/imports")
    assert "Preview: 3 to renew" in listing.text and 'data-testid="import-stale"' not in listing.text
    e1 = await User.select(User.id).where(User.email == "e1@north.example").first()
    renewed_by_hand = await form_post(
        client,
        f"/companies/{north}/licences?tab=expired",
        f"/companies/{north}/licences/allocate",
        {"user_id": str(e1["id"])},
    )
    assert renewed_by_hand.status_code < 400, renewed_by_hand.text[:300]
    listing = await client.get(f"/companies/{north}/imports")
    assert 'data-testid="import-stale"' in listing.text
    shown = await client.get(here)
    assert 'data-testid="preview-stale"' in shown.text

    asked = await form_post(client, here, f"{here}/renew", {})
    assert asked.status_code == 409 and "counted again and nothing was renewed" in asked.text
    assert 'data-testid="renew-count">2<' in asked.text and 'data-testid="preview-stale"' not in asked.text
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 2
    confirmed = await form_post(client, here, f"{here}/renew", {})
    assert confirmed.status_code in (302, 303)
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 4
    assert "2 renewed" in (await client.get(f"/companies/{north}/imports")).text


async def test_count_again_makes_a_stale_preview_fresh(client, tree):
    await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    north = tree.north["id"]
    here = (await upload(client, north, FILE.encode())).headers["location"]
    await add_user(tree.north, "new@north.example", role="learner")
    assert 'data-testid="count-again"' in (await client.get(here)).text
    counted = await form_post(client, here, f"{here}/refresh", {})
    assert counted.status_code in (302, 303)
    shown = await client.get(here)
    assert 'data-testid="preview-stale"' not in shown.text and 'data-testid="renew-count">3<' in shown.text


async def test_a_preview_whose_file_was_removed_says_so_and_still_renews(client, tree):
    running = await setup_north(tree, now=utcnow())
    await sign_in(client, tree.email("north"))
    here = (await upload(client, tree.north["id"], FILE.encode())).headers["location"]
    stored = (await CsvImport.select(CsvImport.stored_as).first())["stored_as"]
    (FILES.directory / stored).unlink()
    shown = await client.get(here)
    assert shown.status_code == 200 and 'data-testid="file-gone"' in shown.text
    assert 'data-testid="renew-count">3<' in shown.text
    assert (await form_post(client, here, f"{here}/renew", {})).status_code in (302, 303)
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 4


def test_csv_max_bytes_is_read_by_the_settings_and_handed_on_by_the_services(monkeypatch):
    read = get_settings.__wrapped__  # not the process's cached settings
    monkeypatch.delenv("CSV_MAX_BYTES", raising=False)
    assert read().csv_max_bytes == 20 * 1024 * 1024
    monkeypatch.setenv("CSV_MAX_BYTES", "102400")
    settings = read()
    assert settings.csv_max_bytes == 102400
    files = build_services(settings).import_files
    assert files.max_bytes == 102400 and files.directory == settings.var_dir / "imports"
    for wrong in ("0", "-5", "20MB"):
        monkeypatch.setenv("CSV_MAX_BYTES", wrong)
        with pytest.raises(ValueError, match="CSV_MAX_BYTES must be a whole number of at least 1"):
            read()


async def test_a_smaller_limit_from_the_settings_refuses_a_file_over_it_with_the_usual_message(tree):
    await setup_north(tree, now=utcnow())
    settings = dataclasses.replace(get_settings(), csv_max_bytes=100 * 1024, in_process_jobs=False)
    app = create_app(settings, sign_ins_per_minute=1000, services=build_services(settings))
    message = (
        "The file is over 100 KB, the largest accepted. Split it into smaller files, or keep only the e-mail column."
    )
    north = tree.north["id"]
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as client,
    ):
        await sign_in(client, tree.email("north"))
        assert "100 KB" in (await client.get(f"/companies/{north}/imports")).text
        line = b"someone@north.example\n"
        # Far over: the request body is refused as it comes in (the route's limit).
        far_over = await upload(client, north, line * (200 * 1024 // len(line)))
        assert far_over.status_code == 413 and message in far_over.text
        # Just over: within the form's slack, the import refuses it as it stores it.
        just_over = await upload(client, north, line * (100 * 1024 // len(line) + 10))
        assert just_over.status_code == 400 and message in just_over.text
        assert await CsvImport.count() == 0
        # Under the smaller limit a file goes through.
        assert (await upload(client, north, FILE.encode())).status_code in (302, 303)
    assert await CsvImport.count() == 1
