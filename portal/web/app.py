"""The Litestar application: plugins, middleware, stores, error pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial

from litestar import Litestar, Request, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.htmx import HTMXPlugin, HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore
from litestar.template.config import TemplateConfig

from portal import db
from portal.domain.companies import KIND_LABELS
from portal.domain.licences.status import licence_status
from portal.domain.users import ROLE_LABELS
from portal.jobs.queue import Timers, create_queue
from portal.services import Services, build_services
from portal.settings import PROJECT_DIR, Settings, get_settings
from portal.web.alignment import AlignmentController
from portal.web.api import API_KEY_SCHEME, ApiKeyController, entitlement
from portal.web.api_v1 import API_V1, ApiLimits
from portal.web.audit import AuditController
from portal.web.auth import AuthController
from portal.web.auto_renewal import AutoRenewalController
from portal.web.billing import BILLING_ROUTES
from portal.web.branding import BrandingController, brand_colour, brand_logo
from portal.web.bulk import BulkController
from portal.web.companies import CompanyController
from portal.web.dashboard import DashboardController
from portal.web.errors import EXCEPTION_HANDLERS
from portal.web.headers import policy_for, security_headers
from portal.web.health import healthz
from portal.web.imports import ImportController, upload_router
from portal.web.input_guard import guard_input
from portal.web.licences import LicenceController, UserLicenceController
from portal.web.notifications import NotificationController, outbox_moved
from portal.web.orders import OrderController
from portal.web.pipeline import PipelineController
from portal.web.profile import ProfileController
from portal.web.request_log import REQUEST_LOG, log_unrouted
from portal.web.scim import SCIM_ROUTER
from portal.web.scim_tokens import ScimTokenController
from portal.web.session import SessionConfig, provide_account_holder, provide_actor
from portal.web.sso import SsoController
from portal.web.test_processor import TestProcessorController
from portal.web.throttle import create_counter
from portal.web.two_factor import PasskeyController, TwoFactorController
from portal.web.users import UserController
from portal.web.webhook_endpoints import WebhookController


def _services_of_app(request: Request) -> Services:
    """Read from the app's state at each request rather than fixed when the app is
    built, so one built app can be handed other services (the test suite builds one
    app per kind of card entry and gives each test its own processor)."""
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


def _stores(settings: Settings) -> dict:
    if settings.sessions_redis_url:
        root = RedisStore.with_client(settings.sessions_redis_url, namespace="portal")
        return {"sessions": root.with_namespace("sessions")}
    return {"sessions": FileStore(settings.var_dir / "sessions", create_directories=True)}


# Names a dict row answers as methods; `row.items` stays the method, as in stock Jinja.
_DICT_ATTRIBUTES = frozenset(dir(dict))


def _key_first(getattr_, obj, attribute):
    """`row.name` on a dict row from hand-written SQL: stock Jinja tries
    getattr first and catches an AttributeError on every lookup: the 25 rows of
    Requested Orders' results rendered in 0.8-1.0 ms so, in 0.5-0.6 ms with
    this (23 Nov 2026, 2 shared cores, the template rendered 2,000 times each
    way). For a plain dict and a name that is not a dict attribute, the key is
    looked up directly. The
    answer is the one stock Jinja gives, only sooner: a dict has no other
    attributes, and `row.items`, `row.get`, `row.keys` stay the methods."""
    if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
        try:
            return obj[attribute]
        except KeyError:
            pass
    return getattr_(obj, attribute)


def _engine_setup(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    # Templates are read once per process: checking each file's mtime on every
    # render costs a stat per included template. Restart to see an edit.
    env.auto_reload = False
    env.getattr = partial(_key_first, env.getattr)  # type: ignore[method-assign]
    env.globals["kind_labels"] = KIND_LABELS
    env.filters["role_label"] = lambda role: ROLE_LABELS.get(role, role)
    env.filters["when"] = lambda value: value.strftime("%d %b %Y %H:%M UTC") if isinstance(value, datetime) else ""
    env.filters["day"] = lambda value: value.strftime("%d %b %Y") if isinstance(value, datetime) else ""
    env.filters["licence_status"] = licence_status
    env.filters["po"] = _po_label
    env.filters["card_expiry"] = _card_expiry


def _card_expiry(expires: str | None) -> str:
    """A card's expiry as printed on the card: "12/30", kept as "2030-12"."""
    year, _, month = (expires or "").partition("-")
    return f"{month}/{year[-2:]}" if len(year) == 4 and month else (expires or "")


def _po_label(number: str) -> str:
    """A purchase order number as words: "PO 1000", but "PO-1000" as it is (not "PO PO-1000")."""
    return number if re.match(r"p\.?o(?![a-z])", number, re.IGNORECASE) else f"PO {number}"


def create_app(
    settings: Settings | None = None, sign_ins_per_minute: int | None = None, services: Services | None = None
) -> Litestar:
    """`services`: what the billing domain is handed (the card processor); built from
    the settings unless given (tests hand in their own)."""
    settings = settings or get_settings()
    services = services or build_services(settings)
    sign_ins_per_minute = sign_ins_per_minute or settings.sign_ins_per_minute
    throttle = create_counter(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from portal.jobs import audit_retention as audit_retention_jobs
        from portal.jobs import auto_renewal as auto_renewal_jobs
        from portal.jobs import billing as billing_jobs
        from portal.jobs import import_files as import_file_jobs
        from portal.jobs import mail as mail_jobs
        from portal.jobs import sso as sso_jobs
        from portal.jobs import webhooks as webhook_jobs
        from portal.mail.smtp import parse_smtp_url

        # The settings and services in the app's state when it starts: a test runs one
        # built app with its own (its processor, no timers).
        settings: Settings = app.state.settings
        services: Services = app.state.services
        if settings.smtp_url:
            parse_smtp_url(settings.smtp_url)  # a bad SMTP_URL stops the start here, saying why
        opened = await db.open_pool()
        app.state.jobs = await create_queue(settings.redis_url, services)
        # Without Redis no worker runs: this process delivers e-mails, sweeps for
        # reminders and renews subscriptions.
        timers = Timers() if not settings.redis_url and settings.in_process_jobs else None
        if timers:
            mail_jobs.start_in_process(timers, services)
            billing_jobs.start_in_process(timers, services)
            import_file_jobs.start_in_process(timers, services)
            auto_renewal_jobs.start_in_process(timers)
            webhook_jobs.start_in_process(timers, services)
            audit_retention_jobs.start_in_process(timers)
            sso_jobs.start_in_process(timers)
        try:
            yield
        finally:
            if timers:
                await timers.stop()
            await app.state.jobs.close()
            if opened:
                await db.close_pool()

    return Litestar(
        route_handlers=[
            # Pages are for people; the OpenAPI schema documents the JSON API only.
            Router(
                path="/",
                include_in_schema=False,
                route_handlers=[
                    AuthController,
                    CompanyController,
                    AutoRenewalController,
                    AlignmentController,
                    DashboardController,
                    WebhookController,
                    PipelineController,
                    BulkController,
                    UserController,
                    LicenceController,
                    UserLicenceController,
                    ImportController,
                    upload_router(services.import_files),
                    OrderController,
                    NotificationController,
                    outbox_moved,
                    ProfileController,
                    TwoFactorController,
                    PasskeyController,
                    SsoController,
                    ApiKeyController,
                    ScimTokenController,
                    AuditController,
                    BrandingController,
                    brand_logo,
                    brand_colour,
                    *BILLING_ROUTES,
                    # The test processor's own card page; Stripe's is Stripe's.
                    *([TestProcessorController] if services.card_entry.kind == "test" else []),
                ],
            ),
            entitlement,
            API_V1,
            SCIM_ROUTER,
            healthz,
            create_static_files_router(path="/static", directories=[PROJECT_DIR / "static"], include_in_schema=False),
        ],
        dependencies={
            "actor": Provide(provide_actor),
            # The signed-in user's own account (Profile, second factors): read-only managers too.
            "account": Provide(provide_account_holder),
            "services": Provide(_services_of_app, sync_to_thread=False),
        },
        plugins=[HTMXPlugin()],
        request_class=HTMXRequest,
        template_config=TemplateConfig(
            directory=PROJECT_DIR / "templates", engine=JinjaTemplateEngine, engine_callback=_engine_setup
        ),
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_secure=settings.secure_cookies,
            cookie_httponly=True,
            cookie_samesite="lax",
        ),
        middleware=[
            REQUEST_LOG,
            SessionConfig(
                store="sessions",
                secure=settings.secure_cookies,
                httponly=True,
                samesite="lax",
                # Kept in the store no longer than a session may last (portal/domain/sessions.py).
                max_age=settings.session_max_hours * 3600,
            ).middleware,
        ],
        stores=_stores(settings),
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=guard_input,  # ids, numbers and control characters, before any handler
        # On every message the app sends, also those of errors raised in middleware (CSRF, rate limit)
        # and of addresses no route matches, which route middleware never sees.
        before_send=[security_headers(policy_for(services.card_entry)), log_unrouted],
        # The portal configures logging itself (portal/logs.py); Litestar's default would replace its handler.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="License Portal API", version="1", components=API_KEY_SCHEME, path="/schema"
        ),
        lifespan=[lifespan],
        # Sign-in and "Forgot password?" limits (portal/web/throttle.py): counted in
        # the handlers, per client address and per account, atomically.
        state=State(
            {
                "settings": settings,
                "api_limits": ApiLimits.of(settings),
                "services": services,
                "throttle": throttle,
                "sign_ins_per_minute": sign_ins_per_minute,
            }
        ),
        on_shutdown=[throttle.close],
    )
