"""Benchmarks on a large PostgreSQL dataset: `make bench` (see docs/benchmarks.md)."""

import os

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/portal_bench"
PARTNER_EMAIL = "bench-partner@bench.example"
BIG_MANAGER_EMAIL = "bench-big@bench.example"
PASSWORD = "bench-password"
BIG_CUSTOMER = "Bench Big Customer"


def use_database(url: str) -> None:
    """portal reads its settings once, at import: point it at the bench database
    before anything imports it. A fixed SECRET_KEY keeps the bench process from
    writing one into the project's var/ (it signs nothing here)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
