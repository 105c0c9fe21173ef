"""Idle reclaim: a running job whose every GPU stays idle (under the waste report's threshold)
for its idle timeout is warned, then ended (CANCELLED, ``idle: GPUs under 10% for 30m``), so
GPUs nobody computes on go back to the queue instead of only showing up in the waste report.

The timeout is the job's ``--idle-timeout``, else its team's default (``idle_timeouts``). The
warning comes a grace before the end (a quarter of the timeout, at most 5 minutes): it is
posted to the job's and its user's webhooks and shown by ``show``; GPUs that compute again
clear it. The readings are the agents' samples, so a GPU the agent did not read is never
taken for idle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from clusterctl.controller.background import Periodic
from clusterctl.parsing import format_duration
from clusterctl.states import IDLE_END, JobState
from clusterctl.store import Job, JobStore, SampleStore
from clusterctl.usage import idle_throughout

log = logging.getLogger(__name__)
FRESH_S = 60.0
"""Readings older than this say nothing about whether a GPU is idle now."""
ACTOR = "clusterctl"
"""Who ends an idle job, in its history."""


def grace_s(limit_s: float) -> float:
    return min(300.0, limit_s / 4)


class IdleReaper(Periodic):
    name = "idle-reaper"

    def __init__(self, jobs: JobStore, samples: SampleStore, threshold: float,
                 defaults: Mapping[str, int], tell: Callable[[Job, dict[str, Any]], None],
                 wake: Callable[[], None] = lambda: None, interval_s: float = 5.0,
                 clock: Callable[[], float] = time.time, interactive_s: int | None = None
                 ) -> None:
        super().__init__(interval_s)
        self.jobs, self.samples, self.threshold = jobs, samples, threshold
        self.defaults, self.tell, self.wake, self.clock = defaults, tell, wake, clock
        self.interactive_s = interactive_s
        """The default for interactive jobs whose team has none."""

    def tick(self) -> None:
        self.check_once()

    def limit(self, job: Job) -> int | None:
        if job.service_id is not None:
            return None  # a replica waits for requests: its service scales it, not this
        team = self.defaults.get(job.team) or self.defaults.get("*")
        if job.idle_timeout_s or team:
            return job.idle_timeout_s or team
        return self.interactive_s if job.interactive is not None else None

    def reason(self, limit_s: int) -> str:
        return f"{IDLE_END} {self.threshold:.0%} for {format_duration(limit_s)}"

    def warning(self, job: Job) -> str | None:
        """What ``show`` says of a warned job."""
        limit = self.limit(job)
        if job.idle_warned_at is None or limit is None or job.state != JobState.RUNNING:
            return None
        ends = job.idle_warned_at.timestamp() + grace_s(limit)
        at = datetime.fromtimestamp(ends, timezone.utc)
        return (f"its GPUs have been under {self.threshold:.0%} for "
                f"{format_duration(limit - grace_s(limit))}; it ends by {at:%H:%M:%S} UTC "
                "unless they compute")

    def _idle(self, job: Job, seconds: float, now: float) -> bool:
        """Every GPU of the job idle for the last ``seconds`` it was read (samples arrive
        some seconds late, in batches; a GPU not read in the last minute is not idle)."""
        held = [a for a in self.jobs.allocations(job.id, open_only=True)
                if a.attempt == job.attempt]
        if not held:
            return False
        for a in held:
            points = self.samples.points(a.node, a.gpu_index, a.gpu_uuid,
                                         now - seconds - FRESH_S, now)
            newest = max((p.end for p in points if p.util_n), default=None)
            if newest is None or now - newest > FRESH_S or not idle_throughout(
                    points, newest - seconds, newest, self.threshold):
                return False
        return True

    def check_once(self, now: float | None = None) -> list[int]:
        """Warn and end the jobs idle long enough; the ids of those ended."""
        now = self.clock() if now is None else now
        ended = []
        for job in self.jobs.active():
            limit = self.limit(job)
            if (limit is None or job.id is None or job.state != JobState.RUNNING
                    or job.started_at is None or job.cancel_requested):
                continue
            ran = now - job.started_at.timestamp()
            warn_after = limit - grace_s(limit)
            if ran < warn_after:
                continue
            if not self._idle(job, warn_after, now):
                if job.idle_warned_at is not None:
                    self.jobs.set_idle_warned(job.id, None)  # computing again
                continue
            if job.idle_warned_at is None:
                self.jobs.set_idle_warned(job.id, datetime.fromtimestamp(now, timezone.utc))
                job.idle_warned_at = datetime.fromtimestamp(now, timezone.utc)
                text = self.warning(job) or ""
                log.info("job %s: %s", job.id, text)
                self._tell(job, "idle_warning", text)
                continue
            if ran >= limit and now - job.idle_warned_at.timestamp() >= grace_s(limit) \
                    and self._idle(job, limit, now):
                why = self.reason(limit)
                outcome, _ = self.jobs.request_cancel(job.id, ACTOR, True, reason=why)
                if outcome in ("requested", "cancelled"):
                    log.info("job %s ended: %s", job.id, why)
                    self._tell(job, "idle_end", why)
                    ended.append(job.id)
        if ended:
            self.wake()
        return ended

    def _tell(self, job: Job, event: str, what: str) -> None:
        assert job.id is not None
        self.tell(job, {"text": f"clusterctl: job {job.id} {job.name} of {job.user} "
                                f"({job.team}): {what}", "event": event, "job_id": job.id,
                        "name": job.name, "user": job.user, "team": job.team,
                        "state": job.state, "reason": what})
