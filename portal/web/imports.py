""" "Select Users by CSV": the "Import Licence Renewal" page (upload), an
import's own page (column, first rows, the two counts and their reasons,
"Renew Licences", progress, result), its downloads, and the learners export.

Big imports are applied by a job (arq, or the in-process queue); the page
polls a progress fragment that replaces itself until the job is done."""

from __future__ import annotations

from hmac import compare_digest
from typing import Any

from litestar import Controller, Request, Router, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash, generate_csrf_token
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template
from litestar.utils.scope.state import ScopeState

from portal.domain.access import get_company
from portal.domain.clock import utcnow
from portal.domain.errors import DomainError
from portal.domain.imports import apply as applying
from portal.domain.imports import export, preview
from portal.domain.imports.limits import ImportFiles, size_words
from portal.domain.imports.preview import REASONS
from portal.jobs.imports import job_id
from portal.services import Services
from portal.web.forms import to_int
from portal.web.input_guard import guard_input
from portal.web.render import render
from portal.web.session import CurrentActor

ServicesOf = NamedDependency[Services]
SHOWN_PER_REASON = 100
# Room for the form's other fields and the multipart framing around the file.
_BODY_SLACK = 64 * 1024


def _csrf_secret_of(token: str, secret: str) -> bytes | None:
    """The random part of a token the portal signed (as Litestar's CSRF middleware reads it), else None."""
    if len(token) <= CSRF_SECRET_LENGTH:
        return None
    head, mac = token[:CSRF_SECRET_LENGTH], token[CSRF_SECRET_LENGTH:]
    expected = generate_csrf_hash(token=head, secret=secret)
    return head.encode() if compare_digest(mac.encode(), expected.encode()) else None


async def _read_upload(request: Request) -> None:
    """The upload's `before_request`, in place of the CSRF middleware's check and
    the portal's input guard. The middleware reads the form to find the token, so
    a file over the limit would fail inside it, where no page can be made (no
    user, no company, no token for the form). Here the form is read first: over
    the limit, the handler answers with the whole upload page and nothing is kept
    (so nothing needs the check); otherwise the token is checked as the middleware
    checks it, then the input guard runs."""
    config = request.app.csrf_config
    assert config is not None, "the app always has a CSRF config"
    cookie = request.cookies.get(config.cookie_name) or ""
    cookie_secret = _csrf_secret_of(cookie, config.secret)
    state = ScopeState.from_scope(request.scope)
    try:
        form = await request.form()
    except HTTPException as exc:
        if exc.status_code != 413:
            raise
        request.state.too_big = True
        if cookie_secret is None:  # the form on the page needs a cookie to match
            cookie = request.state.new_csrf_cookie = generate_csrf_token(secret=config.secret)
        state.csrf_token = cookie
        return
    sent = request.headers.get(config.header_name) or form.get("_csrf_token")
    if not isinstance(sent, str):
        raise PermissionDeniedException("CSRF token verification failed")
    sent_secret = _csrf_secret_of(sent, config.secret)
    if cookie_secret is None or sent_secret is None or not compare_digest(sent_secret, cookie_secret):
        raise PermissionDeniedException("CSRF token verification failed")
    state.csrf_token = sent
    await guard_input(request)


def _csv(chunks: Any, filename: str) -> Stream:
    return Stream(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _upload_page(
    request: HTMXRequest, actor, company_id: int, files: ImportFiles, problem: str = "", status_code: int = 200
) -> Template:
    company = await get_company(actor, company_id)
    listing = await preview.company_imports(actor, company_id, to_int(request.query_params.get("page")) or 1, utcnow())
    return render(
        request,
        "pages/imports.html",
        {"company": company, "listing": listing, "problem": problem, "max_size": size_words(files.max_bytes)},
        status_code=status_code,
    )


class ImportUploadController(Controller):
    """The upload alone: its body limit comes from the services the app is built
    with (upload_router), which Litestar fixes per route when the app is made."""

    path = "/companies/{company_id:int}"

    @post(
        "/imports",
        before_request=_read_upload,
        exclude_from_csrf=True,  # checked by _read_upload, after the body is read
        name="imports.upload",
    )
    async def upload(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], services: ServicesOf
    ) -> Template | Redirect:
        files = services.import_files
        await get_company(actor, company_id)
        if getattr(request.state, "too_big", False):
            page = await _upload_page(request, actor, company_id, files, files.too_big_message, status_code=413)
            if new_cookie := getattr(request.state, "new_csrf_cookie", None):
                config = request.app.csrf_config
                assert config is not None
                page.set_cookie(
                    key=config.cookie_name,
                    value=new_cookie,
                    path=config.cookie_path,
                    secure=config.cookie_secure,
                    httponly=config.cookie_httponly,
                    samesite=config.cookie_samesite,
                    domain=config.cookie_domain,
                )
            return page
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not getattr(upload, "filename", ""):
            return await _upload_page(request, actor, company_id, files, "Choose a CSV file to upload.", 400)
        try:
            import_id = await preview.receive(actor, company_id, upload.filename, upload.file, utcnow(), files)
        except DomainError as refused:
            return await _upload_page(request, actor, company_id, files, str(refused), status_code=400)
        finally:
            await upload.close()
        return Redirect(request.app.route_reverse("imports.show", company_id=company_id, import_id=import_id))


def upload_router(files: ImportFiles) -> Router:
    """The upload route with a body limit of the largest file accepted (and the form around it)."""
    return Router(
        path="/", route_handlers=[ImportUploadController], request_max_body_size=files.max_bytes + _BODY_SLACK
    )


class ImportController(Controller):
    path = "/companies/{company_id:int}"

    @get("/imports", name="imports.imports")
    async def imports(
        self, request: HTMXRequest, actor: CurrentActor, company_id: FromPath[int], services: ServicesOf
    ) -> Template:
        return await _upload_page(request, actor, company_id, services.import_files)

    async def _page(
        self,
        request: HTMXRequest,
        actor,
        company_id: int,
        import_id: int,
        files: ImportFiles,
        problem: str = "",
        status_code: int = 200,
    ) -> Template:
        row = await preview.get_import(actor, company_id, import_id)
        context = await self._context(actor, company_id, row, files)
        context["problem"] = problem
        return render(
            request,
            "pages/import.html",
            context,
            status_code=status_code,
            fragments={"import-progress": "partials/imports/_progress.html"},
        )

    async def _context(self, actor, company_id: int, row: dict, files: ImportFiles) -> dict:
        company = await get_company(actor, company_id)
        summary = row["result"] if row["status"] == "done" else row["preview"]
        counts = summary.get("counts", {})
        reasons = [
            {
                "key": key,
                "label": label,
                "count": counts[key],
                "rows": await preview.rows_of(actor, company_id, row["id"], (key,), SHOWN_PER_REASON),
            }
            for key, label in REASONS.items()
            if counts.get(key)
        ]
        return {
            "company": company,
            "imp": row,
            "summary": summary,
            "not_renewed": preview.not_renewed(summary),
            "reasons": reasons,
            "layout": preview.layout_of(row, files) if row["status"] == "previewed" else None,
            "stale": preview.is_stale(row, utcnow()),
            "shown": SHOWN_PER_REASON,
        }

    @get("/imports/{import_id:int}", name="imports.show")
    async def show(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        import_id: FromPath[int],
        services: ServicesOf,
    ) -> Template:
        return await self._page(request, actor, company_id, import_id, services.import_files)

    @get("/imports/{import_id:int}/progress", name="imports.progress")
    async def progress(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        import_id: FromPath[int],
        services: ServicesOf,
    ) -> Template:
        row = await preview.get_import(actor, company_id, import_id)
        context = await self._context(actor, company_id, row, services.import_files)
        return render(request, "partials/imports/_progress.html", context)

    @post("/imports/{import_id:int}/column", name="imports.column")
    async def column(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        import_id: FromPath[int],
        services: ServicesOf,
    ) -> Template | Redirect:
        form = await request.form()
        try:
            await preview.choose_column(
                actor,
                company_id,
                import_id,
                to_int(form.get("column")),
                form.get("add_unknown") == "1",
                utcnow(),
                services.import_files,
            )
        except DomainError as refused:
            return await self._page(
                request, actor, company_id, import_id, services.import_files, str(refused), status_code=400
            )
        return Redirect(request.app.route_reverse("imports.show", company_id=company_id, import_id=import_id))

    @post("/imports/{import_id:int}/renew", name="imports.renew")
    async def renew(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        import_id: FromPath[int],
        services: ServicesOf,
    ) -> Template | Redirect:
        async def start_job() -> None:
            # arq keeps one job per id, so asking again never runs it twice at once.
            await request.app.state.jobs.enqueue(
                "apply_import", import_id, company_id, actor.user_id, actor.managing_id, job_id=job_id(import_id)
            )

        here = f"/companies/{company_id}/imports/{import_id}"
        try:
            await applying.renew_licences(actor, company_id, import_id, utcnow(), start_job, services.import_files)
        except DomainError as refused:
            status = 409 if isinstance(refused, applying.PreviewStale) else 400
            return await self._page(
                request, actor, company_id, import_id, services.import_files, str(refused), status_code=status
            )
        return Redirect(here)

    @post("/imports/{import_id:int}/refresh", name="imports.refresh")
    async def refresh(
        self,
        request: HTMXRequest,
        actor: CurrentActor,
        company_id: FromPath[int],
        import_id: FromPath[int],
        services: ServicesOf,
    ) -> Template | Redirect:
        """Count a stale preview again, from the rows already read (the file may be gone)."""
        try:
            await preview.refresh(actor, company_id, import_id, utcnow())
        except DomainError as refused:
            return await self._page(
                request, actor, company_id, import_id, services.import_files, str(refused), status_code=400
            )
        return Redirect(request.app.route_reverse("imports.show", company_id=company_id, import_id=import_id))

    @get("/imports/{import_id:int}/rows.csv", name="imports.rows_csv")
    async def rows_csv(
        self,
        actor: CurrentActor,
        company_id: FromPath[int],
        import_id: FromPath[int],
        reason: FromQuery[str] = "",
    ) -> Stream:
        await preview.get_import(actor, company_id, import_id)
        outcomes = (reason,) if reason in REASONS else tuple(REASONS)
        name = f"import-{import_id}-{reason if reason in REASONS else 'not-renewed'}.csv"
        return _csv(export.import_rows_csv(actor, company_id, import_id, outcomes), name)

    @get("/learners.csv", name="imports.learners_csv")
    async def learners_csv(self, actor: CurrentActor, company_id: FromPath[int]) -> Stream:
        await get_company(actor, company_id)
        return _csv(export.learners_csv(actor, company_id, utcnow()), f"learners-{company_id}.csv")
