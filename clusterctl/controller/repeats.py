"""The loop's errors that repeat, logged once with their traceback, then once a minute with
how often they came since.

With the data directory's disk full, every pass failed to write each running job's log and
logged a traceback per job every half second: 478 in 2.5 minutes, burying the one line that
said why. Errors are grouped by what they are (type and message), not by job, so one cause
is one line a minute however many jobs it touches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("clusterctl.controller")


class RepeatedErrors:
    def __init__(self, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._seen: dict[str, tuple[float, int]] = {}
        """Error signature → (when it was last logged, how often since)."""

    def error(self, what: str, exc: BaseException) -> bool:
        """Log ``what`` failed with ``exc``, unless the same error was logged in the last
        ``every_s``; True when it was logged."""
        key = f"{type(exc).__name__}: {str(exc)[:160]}"
        now = self.clock()
        last = self._seen.get(key)
        if last is None:
            self._seen[key] = (now, 0)
            log.error("%s: %s (repeats are counted and said once a minute)", what, key,
                      exc_info=exc)
            return True
        logged_at, since = last
        if now - logged_at < self.every_s:
            self._seen[key] = (logged_at, since + 1)
            return False
        self._seen[key] = (now, 0)
        log.error("%s: %s (%d times in the last %.0fs)", what, key, since + 1,
                  now - logged_at)
        return True
