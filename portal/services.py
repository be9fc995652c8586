"""What the domain is handed: built once from Settings at start-up by the web
app (portal/web/app.py), the worker (portal/jobs/worker.py) and the CLI, and passed
down explicitly (the card processor is a parameter of every domain function that asks
it something, the imports' folder and size limit of every one that touches a file),
so nothing depends on a module global someone must remember to set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal.domain.billing.payments import CardProcessor, TestProcessor
from portal.domain.dashboard.kept import Kept
from portal.domain.imports.limits import ImportFiles
from portal.domain.sso.provider import ProviderDirectory
from portal.domain.webhooks.delivery import Sender, http_sender
from portal.settings import PROJECT_DIR, Settings

STRIPE_JS = "https://js.stripe.com/v3/"


@dataclass(frozen=True)
class CardEntry:
    """How the billing pages take a card in the browser, and what the
    Content-Security-Policy must let them load or talk to for it."""

    kind: str  # "test": the test processor's card page in a frame; "stripe": Elements
    publishable_key: str = ""
    script_url: str = ""
    script_src: tuple[str, ...] = ()
    connect_src: tuple[str, ...] = ()
    frame_src: tuple[str, ...] = ()


@dataclass(frozen=True)
class Services:
    processor: CardProcessor
    # Where the portal is reached from outside: the links of the e-mails rendered
    # with these services. By default Settings' own (PORT 8000), as for import_files.
    base_url: str = "http://127.0.0.1:8000"
    card_entry: CardEntry = field(default_factory=lambda: CardEntry("test"))
    # What Stripe signs its webhook events with (whsec_…); None: the webhook answers 404.
    webhook_secret: str | None = None
    # How webhooks to partners' systems leave (portal.domain.webhooks.delivery).
    webhook_sender: Sender = field(default_factory=http_sender)
    # Identity providers' discovery documents and keys, kept for the process (portal.domain.sso).
    sso_providers: ProviderDirectory = field(default_factory=ProviderDirectory)
    # Where uploaded CSV files are kept and how big one may be (portal.domain.imports);
    # by default Settings' own defaults, as services built for billing alone need no other.
    import_files: ImportFiles = field(
        default_factory=lambda: ImportFiles(PROJECT_DIR / "var" / "imports", Settings.csv_max_bytes)
    )
    # The Admin Dashboard's parts kept between loads, under their wing's version (portal.domain.dashboard.kept).
    dashboard_kept: Kept = field(default_factory=Kept)


def import_files_of(settings: Settings) -> ImportFiles:
    return ImportFiles(directory=settings.var_dir / "imports", max_bytes=settings.csv_max_bytes)


def services_of_job(ctx: dict[str, Any]) -> Services:
    """What a job is handed in its context: put there by whoever runs it (the worker
    at start-up, the web process's in-process queue and timers)."""
    services = ctx.get("services")
    if not isinstance(services, Services):
        raise RuntimeError("this job needs ctx['services'] (portal/services.py), set where the worker starts")
    return services


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def build_services(settings: Settings) -> Services:
    if settings.payment_processor != "stripe":
        return Services(
            processor=TestProcessor(),
            base_url=settings.base_url,
            card_entry=CardEntry("test"),
            webhook_sender=http_sender(settings.webhooks_to_private),
            sso_providers=ProviderDirectory(allow_private=settings.webhooks_to_private),
            import_files=import_files_of(settings),
        )
    from portal.stripe_processor import StripeProcessor

    assert settings.stripe_secret_key and settings.stripe_publishable_key, "checked by get_settings"
    processor = StripeProcessor(settings.stripe_secret_key, api_base=settings.stripe_api_base)
    if settings.stripe_api_base:
        # A stand-in (localstripe) serves both the API and its Stripe.js from one address.
        base = _origin(settings.stripe_api_base)
        entry = CardEntry(
            "stripe",
            publishable_key=settings.stripe_publishable_key,
            script_url=f"{settings.stripe_api_base}/js.stripe.com/v3/",
            script_src=(base,),
            connect_src=(base,),
            frame_src=(base,),
        )
    else:
        # What Stripe documents Stripe.js needs under a CSP.
        entry = CardEntry(
            "stripe",
            publishable_key=settings.stripe_publishable_key,
            script_url=STRIPE_JS,
            script_src=("https://js.stripe.com",),
            connect_src=("https://api.stripe.com",),
            frame_src=("https://js.stripe.com", "https://hooks.stripe.com"),
        )
    return Services(
        processor=processor,
        base_url=settings.base_url,
        card_entry=entry,
        webhook_secret=settings.stripe_webhook_secret,
        webhook_sender=http_sender(settings.webhooks_to_private),
        sso_providers=ProviderDirectory(allow_private=settings.webhooks_to_private),
        import_files=import_files_of(settings),
    )
