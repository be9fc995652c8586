"""`portal` console command: migrate, load demo data, create the first partner,
serve, run a worker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


async def _prepare(demo: bool) -> bool:
    """Migrate, load the demo data if asked and the database is empty; whether
    the demo logins work in this database."""
    from portal import db
    from portal.demo_data import load_demo
    from portal.domain.clock import utcnow

    await db.open_pool()
    try:
        await db.migrate()
        if not demo:
            return False
        if await load_demo(utcnow()):
            print("Loaded demo data.")
            return True
        return await _has_demo_data()
    finally:
        await db.close_pool()


async def _has_demo_data() -> bool:
    from portal.demo_data import DEMO_LOGINS
    from portal.tables import User

    return await User.exists().where(User.email.is_in([email for email, _, _ in DEMO_LOGINS]))


def _print_logins(base_url: str) -> None:
    from portal.demo_data import DEMO_LOGINS, DEMO_PASSWORD, DEMO_STAFF

    print(f"\nDemo logins (password: {DEMO_PASSWORD}):")
    for email, name, company in DEMO_LOGINS:
        print(f"  {email:<40} {name} ({company})")
    for email, name, role in DEMO_STAFF:
        print(f"  {email:<40} {name} ({DEMO_LOGINS[0][2]}, {role.replace('_', ' ')})")
    print()


async def _create_partner(name: str, manager_email: str, manager_name: str | None) -> Any:
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.first_partner import create_first_partner

    await db.open_pool()
    try:
        await db.migrate()
        return await create_first_partner(name, manager_email, manager_name, utcnow())
    finally:
        await db.close_pool()


def create_partner(args: argparse.Namespace, base_url: str) -> int:
    from portal.domain.errors import ValidationFailed

    try:
        made = asyncio.run(_create_partner(args.name, args.manager_email, args.manager_name))
    except ValidationFailed as exc:
        for field, problem in exc.errors.items():
            print(f"portal create-partner: --{field.replace('_', '-')}: {problem}", file=sys.stderr)
        return 2
    print(f"Created partner {made.company['name']} (id {made.company['id']}) and its manager {made.manager['email']}.")
    print(f"Set-password link for {made.manager['name']}, valid once until {made.expires_at:%d %b %Y %H:%M} UTC:")
    print(f"  {base_url}/set-password/{made.token}")
    return 0


async def _outbox_backlog() -> str:
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.outbox import backlog, describe_age

    await db.open_pool()
    try:
        waiting = await backlog(utcnow())
    finally:
        await db.close_pool()
    return f"Outbox: {waiting['queued']} e-mail(s) queued; oldest waiting: {describe_age(waiting['oldest_age'])}."


def uvicorn_options(settings: Any, workers: int) -> dict[str, Any]:
    """How `portal serve` runs uvicorn. Proxy headers (X-Forwarded-For, -Proto)
    are believed only from the addresses in FORWARDED_ALLOW_IPS; unset, from
    nobody, so a client cannot pick the address the sign-in limiter counts."""
    from portal.logs import logging_config

    trusted = settings.forwarded_allow_ips
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": workers,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or "",
        # Every web process logs as `portal worker` does, one line per event;
        # portal.web.request_log writes the line per request, not uvicorn.
        "log_config": logging_config(settings.log_format),
        "access_log": False,
    }


def _smtp_problem() -> str | None:
    """A bad SMTP_URL stops `serve` and `worker` before they start, with the reason
    on stderr instead of deep in a traceback (or, for a worker, at its first e-mail)."""
    from portal.mail.smtp import InvalidSmtpUrl, smtp_config

    try:
        smtp_config()
    except InvalidSmtpUrl as invalid:
        return str(invalid)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal", description="License renewal portal")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("demo", help="apply migrations and load demo data into an empty database")
    serve = sub.add_parser("serve", help="migrate, load demo data if empty, and serve")
    serve.add_argument("--workers", type=int, default=1, help="web processes (production shape)")
    serve.add_argument("--no-demo", action="store_true", help="load no demo data and print no demo logins")
    sub.add_parser("worker", help="run an arq worker (needs REDIS_URL); it reconnects when Redis comes back")
    sub.add_parser("outbox", help="how many e-mails wait to be delivered, and for how long the oldest has")
    partner = sub.add_parser(
        "create-partner", help="create a top partner and its first manager; prints a set-password link"
    )
    partner.add_argument("--name", required=True, help="the partner company's name")
    partner.add_argument("--manager-email", required=True, help="the first manager's e-mail address")
    partner.add_argument("--manager-name", help="the manager's name (default: the e-mail's local part)")
    args = parser.parse_args(argv)

    from portal.logs import configure_logging
    from portal.settings import get_settings

    settings = get_settings()
    if args.command in ("serve", "worker") and (problem := _smtp_problem()):
        print(problem, file=sys.stderr)
        return 2
    if args.command in ("serve", "worker"):
        from portal.services import build_services

        # The processor each web process and worker builds the same way (portal/web/app.py,
        # portal/jobs/worker.py): built here once first, so a bad one stops the start before any fork.
        build_services(settings)
    if args.command in ("migrate", "demo"):
        asyncio.run(_prepare(demo=args.command == "demo"))
    elif args.command == "outbox":
        print(asyncio.run(_outbox_backlog()))
    elif args.command == "create-partner":
        return create_partner(args, settings.base_url)
    elif args.command == "serve":
        import uvicorn

        configure_logging(settings.log_format)
        demo = asyncio.run(_prepare(demo=not args.no_demo))
        print(f"\nLicense Portal on {settings.base_url}")
        if demo:
            _print_logins(settings.base_url)
        if not settings.redis_url:
            print("No REDIS_URL: jobs run in-process, sessions are kept under var/.")
        sys.stdout.flush()
        uvicorn.run("portal.asgi:app", **uvicorn_options(settings, args.workers))
    elif args.command == "worker":
        if not settings.redis_url:
            print("portal worker needs REDIS_URL; without it jobs run inside the web process.", file=sys.stderr)
            return 2
        configure_logging(settings.log_format)  # first: importing the jobs may warn
        from portal.jobs.worker import run_worker

        run_worker()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
