"""`make bench`: generate the dataset, then measure (docs/benchmarks.md).

python -m bench.run [--database-url postgresql://postgres@127.0.0.1:5432/portal_bench] [--no-docs]
"""

from __future__ import annotations

import argparse
import asyncio

from bench import DEFAULT_DATABASE_URL


async def run(url: str, docs: bool) -> None:
    from bench.generate import generate
    from bench.load import load

    await generate(url, docs=docs)
    print()
    await load(url, docs=docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    asyncio.run(run(args.database_url, docs=not args.no_docs))


if __name__ == "__main__":
    main()
