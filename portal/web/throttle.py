"""Counting attempts atomically, per client address and per account.

Litestar's RateLimitMiddleware reads a count and writes it back in two steps, so
concurrent requests (two processes on one Redis) all read the same count and
pass. Here one step adds and reads: a Lua script on Redis (shared by every web
process), or a dict touched with no `await` in between when there is no Redis
(one process, the embedded default).

The client address is the socket peer. A proxy's X-Forwarded-For is believed
only when FORWARDED_ALLOW_IPS names that proxy: uvicorn then puts the client's
address in the ASGI scope before the portal sees the request (`portal serve`
passes the setting to uvicorn); the portal never parses the header itself.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from litestar import Request
from redis.asyncio import Redis

from portal.domain.clock import utcnow
from portal.domain.sign_in import Hit
from portal.settings import Settings

# KEYS[1]: the key; ARGV[1]: the window in milliseconds. A window opens at the
# first attempt and lasts ARGV[1]. INCR, PEXPIRE and PTTL in one script run
# atomically: no request can read the count between them.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if count == 1 or left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""


class RedisCounter:
    """Attempts on Redis, shared by every web process. Windows run on Redis's
    clock (its key expiry), the same for all processes; `now` is not used."""

    def __init__(self, url: str, namespace: str = "portal:throttle") -> None:
        self._redis = Redis.from_url(url)
        self._hit = self._redis.register_script(_HIT)
        self._namespace = namespace

    async def hit(self, key: str, window: timedelta, now: datetime) -> Hit:
        count, left_ms = await self._hit(keys=[f"{self._namespace}:{key}"], args=[_ms(window)])
        return Hit(int(count), max(1, math.ceil(int(left_ms) / 1000)))

    async def forget(self, key: str) -> None:
        await self._redis.delete(f"{self._namespace}:{key}")

    async def close(self) -> None:
        await self._redis.aclose()


class MemoryCounter:
    """Attempts in this process's memory, for the embedded default (no Redis).
    `hit` has no `await`, so on one event loop it is atomic. Windows run on the
    `now` the caller passes."""

    _PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, datetime]] = {}

    async def hit(self, key: str, window: timedelta, now: datetime) -> Hit:
        if len(self._counts) >= self._PRUNE_AT:
            self._counts = {k: entry for k, entry in self._counts.items() if entry[1] > now}
        count, ends = self._counts.get(key, (0, now))
        if ends <= now:
            count, ends = 0, now + window
        self._counts[key] = (count + 1, ends)
        return Hit(count + 1, max(1, math.ceil((ends - now).total_seconds())))

    async def forget(self, key: str) -> None:
        self._counts.pop(key, None)

    async def close(self) -> None:
        self._counts.clear()


def _ms(window: timedelta) -> int:
    return int(window.total_seconds() * 1000)


Counter = RedisCounter | MemoryCounter


def create_counter(settings: Settings) -> Counter:
    """On the sessions' Redis database when there is Redis (shared by all processes)."""
    return RedisCounter(settings.sessions_redis_url) if settings.sessions_redis_url else MemoryCounter()


def counter(request: Request) -> Counter:
    return request.app.state.throttle


def client_address(request: Request) -> str:
    """The socket peer, or the client a trusted proxy named (uvicorn's doing)."""
    return request.client.host if request.client else "unknown"


async def address_over_limit(request: Request, action: str, limit: int, window: timedelta) -> int | None:
    """Count this request against its client address for `action`; when it is
    over `limit` in the window, the seconds until the window ends, else None."""
    hit = await counter(request).hit(f"{action}:address:{client_address(request)}", window, utcnow())
    return hit.retry_after if hit.attempts > limit else None
