"""Settings, read once from environment variables.

| variable       | default                                  |
|----------------|------------------------------------------|
| DATABASE_URL   | sqlite:///var/portal.sqlite              |
| REDIS_URL      | unset: jobs run in-process, sessions in files under var/ |
| SECRET_KEY     | generated once and kept in var/secret_key |
| BASE_URL       | http://127.0.0.1:$PORT                   |
| SMTP_URL       | unset: e-mails are captured in the outbox, not delivered |
| PORT           | 8000                                     |
| HOST           | 127.0.0.1: the address `portal serve` binds |
| FORWARDED_ALLOW_IPS | unset: no proxy is trusted, the client address is the socket peer |
|                | else proxy addresses/networks, comma-separated (uvicorn's syntax), |
|                | whose X-Forwarded-For is believed         |
| LOG_FORMAT     | text (readable lines); or json (one JSON object per line) |
| SIGN_INS_PER_MINUTE | 10: sign-in attempts per client address a minute |
| SESSION_IDLE_MINUTES | 120: a session without a request for this long is signed out |
| SESSION_MAX_HOURS | 24: a session is signed out this long after signing in, however busy |
| PAYMENT_PROCESSOR | test: the built-in test processor (test cards, no network); or stripe |
| STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY, STRIPE_WEBHOOK_SECRET | needed with stripe |
| STRIPE_API_BASE | unset: Stripe's own addresses; else a Stripe stand-in's (tests: localstripe), |
|                | which also serves Stripe.js at <base>/js.stripe.com/v3/ |
| CSV_MAX_BYTES  | 20971520 (20 MB): the largest CSV file an import accepts |
| PORTAL_IN_PROCESS_JOBS | on: without REDIS_URL the web process runs the jobs' timers; |
|                | off: it runs none (tests that move e-mails along themselves) |
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    secret_key: str
    base_url: str
    smtp_url: str | None
    port: int
    var_dir: Path
    host: str = "127.0.0.1"
    forwarded_allow_ips: str | None = None
    log_format: str = "text"
    sign_ins_per_minute: int = 10
    api_requests_per_minute: int = 120
    session_idle_minutes: int = 120
    session_max_hours: int = 24
    payment_processor: str = "test"
    stripe_secret_key: str | None = None
    stripe_publishable_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    # Webhooks may go to loopback and private addresses: a development or test install only.
    webhooks_to_private: bool = False
    csv_max_bytes: int = 20 * 1024 * 1024
    # Without Redis, whether the web process runs the jobs' timers (delivery, sweeps, renewals).
    in_process_jobs: bool = True

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://"))

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def sessions_redis_url(self) -> str | None:
        """Sessions live on the Redis database after arq's queue, so flushing or
        inspecting one never touches the other."""
        if not self.redis_url:
            return None
        parts = urlsplit(self.redis_url)
        queue_db = int(parts.path.strip("/") or 0)
        return urlunsplit(parts._replace(path=f"/{queue_db + 1}"))

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")


LOG_FORMATS = ("text", "json")
PAYMENT_PROCESSORS = ("test", "stripe")
_ON = ("1", "on", "yes", "true")
_OFF = ("0", "off", "no", "false")
_STRIPE_KEYS = ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")


def _payment_processor() -> str:
    value = (os.environ.get("PAYMENT_PROCESSOR") or "test").strip().lower()
    if value not in PAYMENT_PROCESSORS:
        raise ValueError(f"PAYMENT_PROCESSOR must be one of {', '.join(PAYMENT_PROCESSORS)}, not {value!r}")
    # Said at start-up, not at the first payment.
    missing = [name for name in _STRIPE_KEYS if value == "stripe" and not os.environ.get(name)]
    if missing:
        raise ValueError(f"PAYMENT_PROCESSOR=stripe needs {', '.join(missing)}")
    return value


def _positive(name: str, default: int) -> int:
    value = (os.environ.get(name) or "").strip() or str(default)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


def _switch(name: str, default: bool) -> bool:
    value = (os.environ.get(name) or "").strip().lower()
    if not value:
        return default
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{name} must be on or off, not {value!r}")


def _log_format() -> str:
    value = (os.environ.get("LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {value!r}")
    return value


def _secret_key(var_dir: Path) -> str:
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        # Exclusive create so that two processes starting at once agree on one key.
        try:
            with open(path, "x") as f:
                f.write(secrets.token_urlsafe(48))
        except FileExistsError:
            pass
    return path.read_text().strip()


@cache
def get_settings() -> Settings:
    var_dir = Path(os.environ.get("PORTAL_VAR_DIR") or PROJECT_DIR / "var")
    port = int(os.environ.get("PORT") or 8000)
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'portal.sqlite'}",
        redis_url=os.environ.get("REDIS_URL") or None,
        secret_key=_secret_key(var_dir),
        base_url=(os.environ.get("BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
        smtp_url=os.environ.get("SMTP_URL") or None,
        port=port,
        var_dir=var_dir,
        host=os.environ.get("HOST") or "127.0.0.1",
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "").strip() or None,
        log_format=_log_format(),
        sign_ins_per_minute=int(os.environ.get("SIGN_INS_PER_MINUTE") or 10),
        api_requests_per_minute=int(os.environ.get("API_REQUESTS_PER_MINUTE") or 120),
        session_idle_minutes=_positive("SESSION_IDLE_MINUTES", 120),
        session_max_hours=_positive("SESSION_MAX_HOURS", 24),
        payment_processor=_payment_processor(),
        stripe_secret_key=os.environ.get("STRIPE_SECRET_KEY") or None,
        stripe_publishable_key=os.environ.get("STRIPE_PUBLISHABLE_KEY") or None,
        stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET") or None,
        stripe_api_base=(os.environ.get("STRIPE_API_BASE") or "").rstrip("/") or None,
        webhooks_to_private=(os.environ.get("WEBHOOKS_TO_PRIVATE_ADDRESSES") or "").strip().lower() in _ON,
        csv_max_bytes=_positive("CSV_MAX_BYTES", 20 * 1024 * 1024),
        in_process_jobs=_switch("PORTAL_IN_PROCESS_JOBS", True),
    )
