"""Attempts whose runner does not answer a poll: counted per attempt, logged once with a count,
and settled after a bound, so that no attempt's progress hangs on one call succeeding.

A runner killed by Ray's memory monitor while it starts makes every poll of its attempt raise
the same error; before this, each pass logged a traceback and never reached the cancel or the
start timeout, so the job stayed STARTING, holding its GPUs, for as long as nobody looked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

OUT_OF_MEMORY = ("OutOfMemoryError", "running low on memory")


def cause_of(error: BaseException) -> str:
    """One line that says why a poll failed, in the words a person looks for."""
    text = " ".join(str(error).split()) or type(error).__name__
    if any(mark in text for mark in OUT_OF_MEMORY):
        return "runner killed by Ray: node out of memory"
    return f"runner does not answer: {text[:200]}"


@dataclass
class Unanswered:
    """Consecutive failed polls of one attempt."""

    count: int
    first_at: float
    cause: str
    logged_at: float


class PollFailures:
    """Failed polls per (job, attempt). An attempt is settled once its polls have failed
    ``max_failures`` times in a row over at least ``min_window_s`` (a hiccup of a few passes
    ends no job), or, for one that never started, once the start timeout has passed."""

    def __init__(self, max_failures: int = 20, min_window_s: float = 30.0,
                 log_every_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.min_window_s = min_window_s
        self.log_every_s = log_every_s
        self.current: dict[tuple[int, int], Unanswered] = {}

    def failed(self, job_id: int, attempt: int, error: BaseException, now: float) -> Unanswered:
        """Count one failed poll; log the first, then once a minute with the count."""
        key = (job_id, attempt)
        cause = cause_of(error)
        rec = self.current.get(key)
        if rec is None:
            rec = self.current[key] = Unanswered(1, now, cause, now)
            log.warning("job %s attempt %s: %s (repeats are counted, not logged)", job_id,
                        attempt, cause)
            return rec
        rec.count += 1
        rec.cause = cause
        if now - rec.logged_at >= self.log_every_s:
            rec.logged_at = now
            log.warning("job %s attempt %s: %s (%d polls failed in %.0fs)", job_id, attempt,
                        cause, rec.count, now - rec.first_at)
        return rec

    def settle(self, rec: Unanswered, now: float, launched_at: float, started: bool,
               start_timeout_s: float) -> bool:
        """Whether to give up on the attempt (it ends LOST, within its retries)."""
        if not started and now - launched_at > start_timeout_s:
            return True
        return rec.count >= self.max_failures and now - rec.first_at >= self.min_window_s

    def answered(self, job_id: int, attempt: int) -> None:
        self.current.pop((job_id, attempt), None)

    def forget(self, job_id: int) -> None:
        for key in [k for k in self.current if k[0] == job_id]:
            del self.current[key]
