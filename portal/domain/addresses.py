"""Whether an address the portal is told to call (a webhook endpoint, a single
sign-on provider) lies inside a private network: calling it would let a partner
reach what only the portal's servers can (its database, Redis, the cloud's
metadata service). Checked on the name as typed, and again on what the name
resolves to just before each call, since a public name may be pointed at a
private address after it was saved."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


def is_private(host: str) -> bool:
    """An address of this machine or of a private network, or a name that always means this machine."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost")
    return not address.is_global


async def refused_address(url: str) -> str | None:
    """Why the URL's host may not be called (a private address once resolved, or
    no address at all); None when it may."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        return f"The name {host} could not be resolved ({error.strerror or error})."
    if any(is_private(str(info[4][0])) for info in infos):
        return f"{host} resolves to a private address; nothing was sent."
    return None
