"""Headers every response carries."""

from __future__ import annotations

from litestar import Response


async def vary_on_htmx(response: Response) -> Response:
    # async: Litestar runs a sync hook in a worker thread, a thread hop per request.
    response.headers["Vary"] = "HX-Request"
    return response
