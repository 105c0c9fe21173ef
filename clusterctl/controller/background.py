"""A thread that does one thing every so often, for the controller's background work
(notifications, budgets, idle reclaim): started with the controller, stopped with it, and
never stopped by an error (the database away, say): it logs it and tries again next time."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Periodic:
    name = "periodic"
    first_at_start = False
    """Tick once at start too, rather than only after the first interval."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        if self.first_at_start:
            self._tick()
        while not self._stop.wait(self.interval_s):
            self._tick()

    def _tick(self) -> None:
        try:
            self.tick()
        except Exception as e:  # one line: a database outage is news, not a crash
            why = str(e).strip().splitlines()[0] if str(e).strip() else ""
            log.warning("%s: %s %s; trying again in %.0fs", self.name, type(e).__name__, why,
                        self.interval_s)
            log.debug("%s failed", self.name, exc_info=True)

    def tick(self) -> None:
        raise NotImplementedError
