"""`portal` console command: migrate, load demo data, serve, run a worker."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


async def _prepare(demo: bool) -> None:
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.demo import load_demo

    await db.open_pool()
    try:
        await db.migrate()
        if demo and await load_demo(utcnow()):
            print("Loaded demo data.")
    finally:
        await db.close_pool()


def _print_logins(base_url: str) -> None:
    from portal.domain.demo import DEMO_LOGINS, DEMO_PASSWORD

    print(f"\nLicence Portal on {base_url}\nDemo logins (password: {DEMO_PASSWORD}):")
    for email, name, company in DEMO_LOGINS:
        print(f"  {email:<40} {name} ({company})")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal", description="Licence renewal portal")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("demo", help="apply migrations and load demo data into an empty database")
    serve = sub.add_parser("serve", help="migrate, load demo data if empty, and serve")
    serve.add_argument("--workers", type=int, default=1, help="web processes (production shape)")
    serve.add_argument("--no-demo", action="store_true")
    sub.add_parser("worker", help="run an arq worker (needs REDIS_URL)")
    args = parser.parse_args(argv)

    from portal.settings import get_settings

    settings = get_settings()
    if args.command in ("migrate", "demo"):
        asyncio.run(_prepare(demo=args.command == "demo"))
    elif args.command == "serve":
        import uvicorn

        asyncio.run(_prepare(demo=not args.no_demo))
        _print_logins(settings.base_url)
        if not settings.redis_url:
            print("No REDIS_URL: jobs run in-process, sessions are kept under var/.")
        uvicorn.run(
            "portal.asgi:app",
            host=os.environ.get("HOST", "127.0.0.1"),
            port=settings.port,
            workers=args.workers,
            proxy_headers=True,
            log_level="info",
        )
    elif args.command == "worker":
        if not settings.redis_url:
            print("portal worker needs REDIS_URL; without it jobs run inside the web process.", file=sys.stderr)
            return 2
        from arq.worker import run_worker

        from portal.jobs.worker import WorkerSettings

        run_worker(WorkerSettings)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
