"""ASGI entry point: `uvicorn portal.asgi:app`."""

from portal.web.app import create_app

app = create_app()
