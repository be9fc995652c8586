"""The ceiling a page of the portal is measured against: a bare Litestar + Jinja +
asyncpg page of 50 rows out of the bench dataset's 1,000,000 learners, with none
of the portal's sessions, CSRF, access rules or layout. `bench.load` serves it with
the same uvicorn options as `portal serve` and reports each page's throughput as
a ratio of this one's, measured in the same run, so the figures survive the shared
machine's drifting speed.

    python -m bench.ceiling --database-url postgresql://… --port 8099   # serve it alone
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from jinja2 import Environment
from litestar import Litestar, Response, get

ROWS = 50
PAGE = Environment(autoescape=True).from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Learners</title></head>
<body><main><h1>Learners</h1><table><thead><tr><th>Name</th><th>E-mail</th><th>License ends</th></tr></thead><tbody>
{% for row in rows %}<tr><td>{{ row.name }}</td><td>{{ row.email }}</td><td>{{ row.licence_ends_at }}</td></tr>
{% endfor %}</tbody></table></main></body></html>"""
)
# A keyset page of a stable order: the same work at any depth of the 1M rows.
QUERY = "SELECT id, name, email, licence_ends_at FROM portal_user WHERE id > $1 ORDER BY id LIMIT $2"


def create_app(database_url: str) -> Litestar:
    @asynccontextmanager
    async def pool(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(database_url, min_size=2, max_size=10)
        try:
            yield
        finally:
            await app.state.pool.close()

    @get("/learners")
    async def learners(after: int = 0) -> Response[str]:
        rows = await app.state.pool.fetch(QUERY, after, ROWS)
        return Response(PAGE.render(rows=rows), media_type="text/html")

    app = Litestar([learners], lifespan=[pool])
    return app


def app_from_env() -> Litestar:
    """For `uvicorn --factory bench.ceiling:app_from_env`."""
    return create_app(os.environ["DATABASE_URL"])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    uvicorn.run(create_app(args.database_url), host="127.0.0.1", port=args.port, access_log=False)


if __name__ == "__main__":
    main()
