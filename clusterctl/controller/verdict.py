"""How an attempt whose ranks all ended ends: from its runners' outcomes and what was asked of
it (a cancel, a preemption), its state, reason and exit code."""

from __future__ import annotations

from clusterctl.executor.types import Launch
from clusterctl.states import JobState
from clusterctl.store import Job


def verdict(job: Job, launch: Launch) -> tuple[JobState, str, int | None]:
    """How an attempt whose ranks all ended ends: its state, reason and exit code."""
    outcomes = [launch.outcomes[r] for r in sorted(launch.outcomes)]
    rank0 = outcomes[0].exit_code
    hung_up = next((o.hangup for o in outcomes if o.hangup), None)
    if hung_up and not job.preempt_requested:  # its user left: as if they had cancelled it
        return JobState.CANCELLED, hung_up, rank0
    if job.cancel_requested and any(o.terminated for o in outcomes):
        # Signalled before it ended. One that ended first keeps its own outcome below.
        return JobState.CANCELLED, job.reason or "cancelled", rank0
    if any(o.timed_out for o in outcomes):
        limit = job.time_limit_s or 0
        return JobState.TIMEOUT, f"time limit of {limit}s reached", rank0
    if job.preempt_requested and any(o.terminated for o in outcomes):
        # Whatever the exit code: a job that checkpoints on SIGTERM and exits 0 is not done.
        return JobState.PENDING, job.reason or "preempted", None
    failed = [o for o in outcomes if o.exit_code != 0]
    if not failed:
        return JobState.SUCCEEDED, "exit code 0", 0
    first = failed[0]
    where = f" on rank {first.rank}" if launch.ranks > 1 else ""
    return JobState.FAILED, f"exit code {first.exit_code}{where}", first.exit_code
