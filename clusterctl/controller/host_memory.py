"""Each node's memory as its agent last said: a live reading for ``clusterctl nodes``, kept
in memory only (it is news, not history). Ray's memory monitor kills workers once a node is
95 % used; a node near that shows so before its jobs start dying."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

PRESSURE = 0.9
"""From this share used, ``nodes`` marks the node: Ray kills workers at 0.95 by default."""


class HostMemory:
    def __init__(self, fresh_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fresh_s, self.clock = fresh_s, clock
        self._lock = threading.Lock()
        self._used: dict[str, tuple[float, float]] = {}
        """Node → (share used, when said)."""

    def note(self, node: str, total: int, available: int) -> None:
        share = min(1.0, max(0.0, 1.0 - available / total)) if total > 0 else 0.0
        with self._lock:
            self._used[node] = (share, self.clock())

    def used(self, node: str) -> float | None:
        """The share in use, or None: no agent said, or not for ``fresh_s``."""
        with self._lock:
            seen = self._used.get(node)
        if seen is None or self.clock() - seen[1] > self.fresh_s:
            return None
        return seen[0]
