"""The running jobs as the policy reads them, with the tallies a pass starts from (GPUs held per
team, per user, per team on each first node; tasks running per array; the jobs ending) kept as
jobs start and end.

A pass used to walk every running job to build these; the simulator calls a pass at every
instant of a year's replay (hundreds of thousands of them, a few dozen jobs running each time),
so it keeps one set across the replay, as it keeps one ``PendingQueue``. The live scheduler
builds one per pass from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, TypeVar

from clusterctl.scheduler.pending import tally
from clusterctl.scheduler.records import RunningJob

T = TypeVar("T")


class RunningSet:
    def __init__(self, jobs: Iterable[RunningJob] = ()) -> None:
        self._jobs: dict[int, RunningJob] = {}
        self.team_used: dict[str, int] = {}
        self.user_used: dict[tuple[str, str], int] = {}
        self.first_node_used: dict[tuple[str, str], int] = {}
        """GPUs per (team, the job's first node): a job counts against the quota type of its
        first node's model (``quotas.py``), which the pass knows and this set does not."""
        self.arrays: dict[int, int] = {}
        self.terminating: dict[int, RunningJob] = {}
        """Jobs signalled to end (preempted, cancelled): their GPUs come free soon."""
        self.unlimited: dict[str, dict[int, RunningJob]] = {}
        """Each team's preemptible jobs without a time limit, still running, that are not
        services or sessions: the ones attained service may demote (``demoting``)."""
        self._memo: dict[str, dict[Hashable, Any]] = {}
        """Per team, values derived from its jobs in ``unlimited`` (``unlimited_memo``),
        dropped as soon as they change."""
        for job in jobs:
            self.add(job)

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[RunningJob]:
        return iter(self._jobs.values())

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def get(self, job_id: int) -> RunningJob:
        return self._jobs[job_id]

    def unlimited_memo(self, team: str, key: Hashable, build: Callable[[], T]) -> T:
        """``build()``, kept under ``key`` until ``team``'s jobs without a limit change: a
        replay's passes ask the same of them far more often than they change."""
        memo = self._memo.setdefault(team, {})
        if key not in memo:
            memo[key] = build()
        value: T = memo[key]
        return value

    def add(self, job: RunningJob) -> None:
        if job.id in self._jobs:
            raise ValueError(f"job {job.id} is running twice")
        self._jobs[job.id] = job
        self._count(job, 1)

    def remove(self, job_id: int) -> RunningJob:
        job = self._jobs.pop(job_id)
        self._count(job, -1)
        return job

    def replace(self, job: RunningJob) -> None:
        """Put ``job`` in the place of the running job of its id (one now ending, say)."""
        self._count(self._jobs[job.id], -1)
        self._jobs[job.id] = job
        self._count(job, 1)

    def _count(self, job: RunningJob, sign: int) -> None:
        total = sign * job.gpus * len(job.node_ids)
        tally(self.team_used, job.team, total)
        tally(self.user_used, (job.team, job.user), total)
        tally(self.first_node_used, (job.team, job.node_ids[0] if job.node_ids else ""),
              total)
        if job.array_id is not None:
            tally(self.arrays, job.array_id, sign)
        if job.terminating:
            if sign > 0:
                self.terminating[job.id] = job
            else:
                del self.terminating[job.id]
        elif job.time_limit_s is None and job.preemptible and job.demotable:
            self._memo.pop(job.team, None)
            if sign > 0:
                self.unlimited.setdefault(job.team, {})[job.id] = job
            else:
                team = self.unlimited[job.team]
                del team[job.id]
                if not team:
                    del self.unlimited[job.team]
