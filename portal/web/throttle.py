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
from portal.settings import Settings

# KEYS[1]: the window's key; ARGV[1]: seconds it must live. INCR and EXPIRE in
# one script run atomically: no request can read the count between them.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def _window(key: str, window: timedelta, now: datetime) -> tuple[str, float]:
    """The key of the window holding `now`, and the timestamp it ends."""
    seconds = int(window.total_seconds())
    slot = int(now.timestamp()) // seconds
    return f"{key}:{seconds}:{slot}", float((slot + 1) * seconds)


def seconds_left(window: timedelta, now: datetime) -> int:
    """Until the window holding `now` ends, rounded up (for Retry-After)."""
    _, ends = _window("", window, now)
    return max(1, math.ceil(ends - now.timestamp()))


class RedisCounter:
    """Attempts on Redis: every web process counts into the same keys."""

    def __init__(self, url: str, namespace: str = "portal:throttle") -> None:
        self._redis = Redis.from_url(url)
        self._hit = self._redis.register_script(_HIT)
        self._namespace = namespace

    async def hit(self, key: str, window: timedelta, now: datetime) -> int:
        name, _ = _window(f"{self._namespace}:{key}", window, now)
        # Kept a whole window past its end, so a clock a little behind Redis's still finds it.
        return int(await self._hit(keys=[name], args=[2 * int(window.total_seconds())]))

    async def forget(self, key: str, window: timedelta, now: datetime) -> None:
        name, _ = _window(f"{self._namespace}:{key}", window, now)
        await self._redis.delete(name)

    async def close(self) -> None:
        await self._redis.aclose()


class MemoryCounter:
    """Attempts in this process's memory, for the embedded default (no Redis):
    `hit` has no `await`, so on one event loop it is atomic."""

    _PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str, window: timedelta, now: datetime) -> int:
        name, ends = _window(key, window, now)
        if len(self._counts) >= self._PRUNE_AT:
            self._prune(now.timestamp())
        count = self._counts.get(name, (0, ends))[0] + 1
        self._counts[name] = (count, ends)
        return count

    async def forget(self, key: str, window: timedelta, now: datetime) -> None:
        self._counts.pop(_window(key, window, now)[0], None)

    def _prune(self, now: float) -> None:
        self._counts = {name: entry for name, entry in self._counts.items() if entry[1] > now}

    async def close(self) -> None:
        self._counts.clear()


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
    now = utcnow()
    if await counter(request).hit(f"{action}:address:{client_address(request)}", window, now) > limit:
        return seconds_left(window, now)
    return None
