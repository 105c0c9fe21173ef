"""The pending queue as the policy reads it: jobs grouped by (team, user, time-limit class),
each group kept in (priority, submit time) order.

Within one group the policy's order never disagrees with that static order (same fair-share and
short-job factors; an older job has at least the age factor of a younger one), so a pass merges
the groups' heads lazily and stops as soon as the free GPUs are used, instead of scoring and
sorting every pending job. The simulator keeps one queue across its whole replay; the live
scheduler builds one per pass from the database.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from clusterctl.scheduler.records import Ask, QueuedJob

Key = tuple[int, float, int]
Shape = tuple[int, int, tuple[str, ...], int | None]
"""(GPUs per node, nodes, GPU types, memory per GPU) of a job's ask."""
Group = tuple[str, str, int]
"""(team, user, length class)."""

LENGTH_CLASSES_S = (3600.0, 4 * 3600.0, 12 * 3600.0, 48 * 3600.0)
"""Upper bounds of the time-limit classes the short-job factor tells apart (the last class is
everything longer, and jobs without a limit)."""


SORT_BELOW = 256
"""A queue this small is sorted whole: a lazy merge of one generator per group costs more than
scoring every job when there are few (the usual queue of a replay, passes by the hundred
thousand)."""


LONGEST = len(LENGTH_CLASSES_S)
PROMOTED_CLASS = 1
"""Where a promoted job ranks: as one that has crossed only the first threshold (a four-hour
limit's class), so that the age factor then lifts it above new short jobs in about a day
(``ordering``). Promoted to the first class, as Tiresias does, such jobs went ahead of every
short job at once: Philly 16 x 8's average completion time rose to 101.5k s, against 71.7k
with this class and 50.8k without promotion (docs/scheduling.md)."""


def length_class(time_limit_s: float | None, attained_gpu_s: float = 0.0,
                 demote_after_gpu_s: tuple[float, ...] = ()) -> int:
    """The class of a time limit; without one, with ``demote_after_gpu_s``
    (``PolicyConfig``), the class of the GPU-time the job has had: 0 (as a one-hour limit)
    below the first threshold, 1 (four hours) below the second, and so on, then the longest."""
    if time_limit_s is None:
        if not demote_after_gpu_s:
            return LONGEST
        crossed = bisect.bisect_right(demote_after_gpu_s, attained_gpu_s)
        return crossed if crossed < len(demote_after_gpu_s) else LONGEST
    return bisect.bisect_left(LENGTH_CLASSES_S, time_limit_s)


def static_key(job: QueuedJob) -> Key:
    return (-job.priority, job.submitted_at, job.id)


def _first(entry: tuple[Key, QueuedJob]) -> Key:
    return entry[0]


K = TypeVar("K")


def tally(counts: dict[K, int], key: K, by: int) -> None:
    """Add ``by`` to ``counts[key]``, dropping the key at zero: a count of what is queued or
    running keeps only what is there."""
    left = counts.get(key, 0) + by
    if left:
        counts[key] = left
    else:
        counts.pop(key, None)


def promotion_at(job: QueuedJob, job_class: int, slowdown: float | None) -> float | None:
    """When a demoted job (no limit, classed below ``PROMOTED_CLASS`` by attained service) is
    promoted to it: once the time since its submission reaches ``slowdown`` times the time it
    has run (Tiresias' starvation promotion; None: never)."""
    if slowdown is None or job_class <= PROMOTED_CLASS or job.time_limit_s is not None:
        return None
    return job.submitted_at + slowdown * job.attained_gpu_s / (job.gpus * job.nodes)


class PendingQueue:
    def __init__(self, jobs: Iterable[QueuedJob] = (),
                 demote_after_gpu_s: tuple[float, ...] = (),
                 promote_after_slowdown: float | None = None) -> None:
        self.demote_after_gpu_s = demote_after_gpu_s
        """The attained-service thresholds jobs without a limit are classed by (a queued
        job's attained service does not change, so neither does its class)."""
        self.promote_after_slowdown = promote_after_slowdown
        """``PolicyConfig.promote_after_slowdown``: when a demoted job is promoted."""
        self._slowdown = promote_after_slowdown if demote_after_gpu_s else None
        """The same, in effect: without thresholds no job is demoted, so none is promoted."""
        self.promoted: set[int] = set()
        """Demoted jobs that waited long enough to rank in ``PROMOTED_CLASS`` (``promote``)."""
        self._promotions: list[tuple[float, int]] = []
        """(when, job) for each queued demoted job, soonest first; stale entries (a job gone,
        or queued again since) are dropped as they come up."""
        self._jobs: dict[int, QueuedJob] = {}
        self._groups: dict[Group, list[tuple[Key, QueuedJob]]] = {}
        self._teams: dict[str, list[Group]] = {}
        self._by_submit: list[tuple[float, int]] = []
        self._class: dict[int, int] = {}
        """Each job's length class (its group's), read by every pass that scores it."""
        self._shapes: dict[Shape, int] = {}
        """Jobs per (GPUs, nodes, types, memory) asked: what could fit, without the jobs."""
        self.demoting: set[int] = set()
        """The queued jobs marked ``demoting`` (their team's jobs were demoted for them)."""
        self._per_user: dict[tuple[str, str], int] = {}
        """Jobs per (team, user), so that a pass lists the teams and users with jobs without
        walking every group."""
        self._sorted: tuple[Callable[[QueuedJob], Any], list[QueuedJob],
                            dict[str, list[QueuedJob]]] | None = None
        """The last whole order asked for (``_order``) and each team's part of it (built
        on first use), until the queue changes."""
        self.asked: dict[Ask, int] = {}
        """GPUs wanted by the typed jobs, per (types, memory) they ask: what a mixed fleet's
        untyped jobs leave alone (kept as jobs come and go, so a pass never scans the queue)."""
        groups = self._groups
        by_submit = self._by_submit
        classes: dict[float | None, int] = {}
        for job in jobs:
            if job.id in self._jobs:
                raise ValueError(f"job {job.id} is queued twice")
            self._jobs[job.id] = job
            limit = job.time_limit_s
            c = classes.get(limit) if limit is not None else None
            if c is None:
                c = self._class_of(job)
                if limit is not None:
                    classes[limit] = c
            self._class[job.id] = c
            if self._slowdown is not None:
                self._due(job, c)
            g = (job.team, job.user, c)
            entries = groups.get(g)
            if entries is None:
                entries = groups[g] = []
                self._teams.setdefault(job.team, []).append(g)
            entries.append(((-job.priority, job.submitted_at, job.id), job))
            self._count(job, 1)
            by_submit.append((job.submitted_at, job.id))
        for entries in groups.values():
            entries.sort(key=_first)
        by_submit.sort()

    def _class_of(self, job: QueuedJob) -> int:
        return length_class(job.time_limit_s, job.attained_gpu_s, self.demote_after_gpu_s)

    def _due(self, job: QueuedJob, job_class: int) -> None:
        """Note when ``job`` is promoted, if it ever is."""
        at = promotion_at(job, job_class, self._slowdown)
        if at is not None:
            heapq.heappush(self._promotions, (at, job.id))

    def _group(self, job: QueuedJob, promoted: bool = False) -> list[tuple[Key, QueuedJob]]:
        c = self._class[job.id] = PROMOTED_CLASS if promoted else self._class_of(job)
        if not promoted:
            self._due(job, c)
        g = (job.team, job.user, c)
        if g not in self._groups:
            self._groups[g] = []
            self._teams.setdefault(job.team, []).append(g)
        return self._groups[g]

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __iter__(self) -> Iterator[QueuedJob]:
        return iter(self._jobs.values())

    def get(self, job_id: int) -> QueuedJob:
        return self._jobs[job_id]

    @property
    def length_classes(self) -> Mapping[int, int]:
        """Each queued job's length class, by job id."""
        return self._class

    def add(self, job: QueuedJob) -> None:
        if job.id in self._jobs:
            raise ValueError(f"job {job.id} is queued twice")
        self._jobs[job.id] = job
        self._sorted = None
        bisect.insort(self._group(job), (static_key(job), job), key=_first)
        self._count(job, 1)
        bisect.insort(self._by_submit, (job.submitted_at, job.id))

    def remove(self, job_id: int) -> QueuedJob:
        job = self._jobs.pop(job_id)
        self._sorted = None
        self._ungroup(job, self._class.pop(job_id))
        self.promoted.discard(job_id)
        self._count(job, -1)
        pair = (job.submitted_at, job.id)
        del self._by_submit[bisect.bisect_left(self._by_submit, pair)]
        return job

    def _ungroup(self, job: QueuedJob, job_class: int) -> None:
        entries = self._groups[(job.team, job.user, job_class)]
        del entries[bisect.bisect_left(entries, static_key(job), key=_first)]

    def promote(self, now: float) -> None:
        """Move the demoted jobs due by ``now`` to ``PROMOTED_CLASS``: a long job without a
        limit that newer short ones have overtaken until it waited ``promote_after_slowdown``
        times its run ranks with less-served jobs, and its age soon takes it past new ones
        (it still demotes only by its own attained service, ``own_class``)."""
        due = self._promotions
        while due and due[0][0] <= now:
            at, job_id = heapq.heappop(due)
            job = self._jobs.get(job_id)
            if job is None or job_id in self.promoted or promotion_at(
                    job, self._class[job_id], self._slowdown) != at:
                continue  # gone, or queued again since with another due time
            self._sorted = None
            self._ungroup(job, self._class[job_id])
            self.promoted.add(job_id)
            bisect.insort(self._group(job, promoted=True), (static_key(job), job), key=_first)

    def _count(self, job: QueuedJob, sign: int) -> None:
        """Keep the per-user, per-shape and per-ask tallies as ``job`` comes (1) or goes (-1)."""
        tally(self._per_user, (job.team, job.user), sign)
        if job.demoting:
            if sign > 0:
                self.demoting.add(job.id)
            else:
                self.demoting.discard(job.id)
        tally(self._shapes, (job.gpus, job.nodes, job.gpu_types, job.gpu_mem), sign)
        if job.gpu_types or job.gpu_mem is not None:
            tally(self.asked, (job.gpu_types, job.gpu_mem), sign * job.gpus * job.nodes)

    def own_class(self, job: QueuedJob) -> int:
        """``job``'s class before any promotion: what it may demote for (``demoting``)."""
        return self._class_of(job) if job.id in self.promoted else self._class[job.id]

    def best_class(self, team: str) -> int:
        """The shortest length class among ``team``'s queued jobs (``LONGEST`` if none)."""
        return min((g[2] for g in self._teams.get(team, ()) if self._groups[g]),
                   default=LONGEST)

    def shapes(self) -> list[Shape]:
        """The distinct (GPUs per node, nodes, types, memory) the queue's jobs ask for."""
        return list(self._shapes)

    def teams(self) -> list[str]:
        return list(dict.fromkeys(team for team, _ in self._per_user))

    def users(self) -> list[tuple[str, str]]:
        return list(self._per_user)

    def submitted_before(self, t: float) -> Iterator[QueuedJob]:
        """Jobs submitted before ``t``, oldest first."""
        for submitted, job_id in self._by_submit:
            if submitted >= t:
                return
            yield self._jobs[job_id]

    def _order(self, key: Callable[[QueuedJob], Any]
               ) -> tuple[list[QueuedJob], dict[str, list[QueuedJob]]]:
        """Every job in the order of ``key`` (and each team's part, filled by ``team_order``),
        sorted once for as long as the queue and the key stay the same: a pass asks for its
        whole order and for each team's."""
        if self._sorted is None or self._sorted[0] is not key:
            self._sorted = (key, sorted(self._jobs.values(), key=key), {})
        return self._sorted[1], self._sorted[2]

    def team_order(self, team: str, key: Callable[[QueuedJob], Any]) -> Iterator[QueuedJob]:
        """One team's jobs, lazily, in the order of ``key`` (as in ``merged``)."""
        if len(self._jobs) <= SORT_BELOW:
            order, teams = self._order(key)
            if not teams:
                for job in order:
                    teams.setdefault(job.team, []).append(job)
            return iter(teams.get(team, []))
        groups = [self._groups[g] for g in self._teams.get(team, [])]
        return heapq.merge(*[(job for _, job in entries) for entries in groups], key=key)

    def merged(self, key: Callable[[QueuedJob], Any] | None = None) -> Iterator[QueuedJob]:
        """All jobs, lazily, in the order of ``key`` (default: priority, then submit time).
        ``key`` must order each group's jobs as the static order does, and tell any two jobs
        apart (so that a small queue, sorted whole, comes out in the same order)."""
        if key is None:
            return (job for _, job in heapq.merge(*self._groups.values(), key=_first))
        if len(self._jobs) <= SORT_BELOW:
            return iter(self._order(key)[0])
        heads = [(job for _, job in entries) for entries in self._groups.values() if entries]
        return heapq.merge(*heads, key=key)
