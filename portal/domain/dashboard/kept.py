"""What the Admin Dashboard keeps between loads: parts of a wing's page that only
its version (dashboard_figure.batch_version, raised by triggers whenever a batch,
an order, a subscription or a customer's name under it changes) and the clock can
change, each kept until an instant computed with it. One is built per process
with the services (portal/services.py) and handed down: nothing here is global."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KEPT = 256  # a few parts for each of the wings open at once; the least recently read go first


@dataclass
class Kept:
    size: int = KEPT
    _parts: OrderedDict[tuple[Any, ...], tuple[Any, datetime | None]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )

    def get(self, key: tuple[Any, ...], now: datetime) -> Any | None:
        """The part kept under `key` if it still holds at `now`, else None."""
        kept = self._parts.get(key)
        if kept is None:
            return None
        value, until = kept
        if until is not None and now >= until:
            del self._parts[key]
            return None
        self._parts.move_to_end(key)
        return value

    def put(self, key: tuple[Any, ...], value: Any, until: datetime | None = None) -> None:
        """Keeps `value` under `key` until `until` (None: until its key is no longer asked)."""
        self._parts[key] = (value, until)
        self._parts.move_to_end(key)
        while len(self._parts) > self.size:
            self._parts.popitem(last=False)

    def clear(self) -> None:
        self._parts.clear()
