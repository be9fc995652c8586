"""Renewal by CSV on the large dataset (bench/generate.py), for "Bench Big Customer"
(60,000 learners: 50,000 expired, 10,000 running, 55,000 free seats).

    python -m bench.csv_import [--database-url …] [--rows 100000] [--million]

Writes a file shaped like an Excel export (semicolons, a UTF-8 mark, Windows-1252,
a manager's column next to the user's) with renewals, active users, duplicates,
unknown and broken addresses mixed in, then times what a manager waits for:
the upload and preview (store, read, COPY, classify), and "Renew Licences"
(run inside a transaction that is rolled back, so the dataset stays as it was
and the bench can run again). `--million` previews a 1,000,000-row file in a
process of its own and prints its peak memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import dataclasses
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import BIG_CUSTOMER, BIG_MANAGER_EMAIL, DEFAULT_DATABASE_URL, use_database

if TYPE_CHECKING:
    from portal.domain.imports.limits import ImportFiles


class _RolledBack(Exception):
    pass


def _import_files() -> ImportFiles:
    """Where the portal keeps uploads, from its settings, as the app and the worker build it."""
    from portal.services import import_files_of
    from portal.settings import get_settings

    return import_files_of(get_settings())


def _write_file(path: Path, expired: list[str], active: list[str], rows: int, seed: int = 9) -> dict:
    """45% renewals, 5% active, 20% listed twice, 10% not an address, the rest unknown."""
    rng = random.Random(seed)
    renew = expired[: int(rows * 0.45)]
    still = active[: int(rows * 0.05)]
    plan = {"renew": len(renew), "active": len(still), "duplicate": int(rows * 0.20), "invalid": int(rows * 0.10)}
    plan["unknown"] = rows - sum(plan.values())  # the rest: more of them when the customer has fewer users
    kinds = (
        [("renew", e) for e in renew]
        + [("active", e) for e in still]
        + [("duplicate", rng.choice(renew)) for _ in range(plan["duplicate"])]
        + [("unknown", f"someone.{i}@elsewhere.example") for i in range(plan["unknown"])]
        + [("invalid", f"not an address {i}") for i in range(plan["invalid"])]
    )
    # Mixed: whichever copy of an address comes first is renewed, the later ones are "listed twice".
    rng.shuffle(kinds)
    with open(path, "wb") as out:
        out.write(codecs.BOM_UTF8)
        out.write("Name;E-mail;Manager e-mail\r\n".encode("cp1252"))
        for n, (_, address) in enumerate(kinds):
            name = f"Zoë Nº{n}"
            cell = address.upper() if n % 7 == 0 else address
            out.write(f"{name};{cell} ;manager@bench.example\r\n".encode("cp1252"))
    return plan


async def _setup(url: str):
    use_database(url)
    from portal import db
    from portal.domain.access import load_actor
    from portal.tables import Company, User

    await db.open_pool()
    manager = await User.select(User.id).where(User.email == BIG_MANAGER_EMAIL).first()
    company = await Company.select(Company.id).where(Company.name == BIG_CUSTOMER).first()
    assert manager and company, "run python -m bench.generate first"
    actor = await load_actor(manager["id"], None)
    return actor, company["id"]


async def _addresses(company_id: int, now) -> tuple[list[str], list[str]]:
    from portal.tables import User

    rows = await User.raw(
        "SELECT email, licence_ends_at FROM portal_user WHERE company = {} AND role = 'learner' AND active ORDER BY id",
        company_id,
    )
    expired = [r["email"] for r in rows if r["licence_ends_at"] is not None and r["licence_ends_at"] <= now]
    active = [r["email"] for r in rows if r["licence_ends_at"] is not None and r["licence_ends_at"] > now]
    return expired, active


async def run(url: str, rows: int) -> dict:
    actor, company_id = await _setup(url)
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.imports import apply as applying
    from portal.domain.imports import preview, reader
    from portal.domain.imports.addresses import parse_cell
    from portal.tables.imports import CsvImport

    now = utcnow()
    files = _import_files()
    expired, active = await _addresses(company_id, now)
    path = Path(tempfile.mkdtemp(prefix="csv-bench-")) / "from-excel.csv"
    plan = _write_file(path, expired, active, rows)
    figures: dict = {"rows": rows, "bytes": path.stat().st_size, "plan": plan}

    started = time.perf_counter()
    layout = reader.inspect(path)
    column = layout.guess or 0
    parsed = sum(
        bool(parse_cell(cells[column] if column < len(cells) else "")[0])
        for _, cells in reader.rows(path, layout.encoding, layout.delimiter, layout.has_header)
    )
    figures["read_and_parse_s"] = time.perf_counter() - started
    figures["addresses"] = parsed

    started = time.perf_counter()
    with open(path, "rb") as source:
        import_id = await preview.receive(actor, company_id, path.name, source, now, files)
    figures["preview_s"] = time.perf_counter() - started
    row = await preview.get_import(actor, company_id, import_id)
    figures["counts"] = row["preview"]["counts"]

    started = time.perf_counter()
    async with db.write_transaction():
        await preview.classify(actor, company_id, import_id, False, now)
    figures["classify_s"] = time.perf_counter() - started

    started = time.perf_counter()
    try:
        async with db.write_transaction():
            result = await applying.apply(actor, company_id, import_id, now, files)
            figures["apply_s"] = time.perf_counter() - started
            figures["renewed"] = result["renewed"]
            raise _RolledBack
    except _RolledBack:
        pass
    await CsvImport.delete().where(CsvImport.id == import_id)
    await db.close_pool()
    return figures


async def write_million(url: str) -> Path:
    actor, company_id = await _setup(url)
    from portal import db
    from portal.domain.clock import utcnow

    expired, active = await _addresses(company_id, utcnow())
    await db.close_pool()
    # Padded out to a million with unknown addresses, as _write_file mixes them.
    path = Path(tempfile.mkdtemp(prefix="csv-bench-")) / "million.csv"
    _write_file(path, expired, active, 1_000_000)
    return path


async def million(url: str, path: Path) -> dict:
    """Preview only, in a process that did nothing else: its peak memory is the figure."""
    actor, company_id = await _setup(url)
    # A bigger file than the portal's default accepts, as CSV_MAX_BYTES would allow.
    files = dataclasses.replace(_import_files(), max_bytes=200 * 1024 * 1024)
    from portal import db
    from portal.domain.clock import utcnow
    from portal.domain.imports import preview
    from portal.tables.imports import CsvImport

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with open(path, "rb") as source:
        import_id = await preview.receive(actor, company_id, path.name, source, utcnow(), files)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row = await preview.get_import(actor, company_id, import_id)
    await CsvImport.delete().where(CsvImport.id == import_id)
    await db.close_pool()
    return {
        "rows": row["rows"],
        "MB": round(path.stat().st_size / 1e6, 1),
        "preview_s": round(seconds, 1),
        "peak_rss_MB": round(peak / 1024),
        "rss_before_preview_MB": round(before / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000-row preview, in a process of its own")
    parser.add_argument("--million-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="csv-bench-var-"))
    if args.million_child:
        print(asyncio.run(million(args.database_url, Path(args.million_child))))
        return
    figures = asyncio.run(run(args.database_url, args.rows))
    print(f"{figures['rows']:,} rows ({figures['bytes'] / 1e6:.1f} MB): {figures['counts']}")
    print(f"  read and parse alone  {figures['read_and_parse_s']:.2f} s")
    print(f"  preview (upload)      {figures['preview_s']:.2f} s   (of which classify ≈ {figures['classify_s']:.2f} s)")
    print(f"  Renew Licences        {figures['apply_s']:.2f} s   ({figures['renewed']:,} renewed, rolled back)")
    if args.million:
        path = asyncio.run(write_million(args.database_url))
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.csv_import",
                "--database-url",
                args.database_url,
                "--million-child",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print("  1,000,000 rows:", child.stdout.strip())


if __name__ == "__main__":
    main()
