"""Job queries and guarded state changes.

Every change is ``UPDATE … WHERE id = :id AND state = :expected [AND attempt = :attempt]`` plus a
history row, in one transaction. Zero rows updated means someone else got there first (a cancel
racing a finish, two controllers), and the caller is told so instead of overwriting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from clusterctl.job_request import JobRequest
from clusterctl.states import (
    ACTIVE,
    ENDED,
    LISTED,
    JobState,
    ordered,
)
from clusterctl.store.job_changes import JobChanges
from clusterctl.store.models import Allocation, Job, JobEvent


@dataclass(frozen=True)
class NewJob:
    """A request the controller accepted, with what it decided: the job's name, owner and
    team, the webhook as allowed, and the submit's ``Idempotency-Key`` (submitted again by
    the same user, it makes no job)."""

    name: str
    user: str
    team: str
    request: JobRequest
    notify_url: str | None = None
    idempotency_key: str | None = None
    service_id: int | None = None
    """A replica of this service."""


def _literal(text: str) -> str:
    """``text`` matched as itself in a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class JobStore(JobChanges):
    """Jobs: reading, submitting (here), and every change of state (``JobChanges``)."""

    # -- reading ------------------------------------------------------------------------------

    def search(
        self,
        *,
        include_finished: bool = False,
        user: str | None = None,
        states: Sequence[str] | None = None,
        limit: int = 1000,
        team: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        array_id: int | None = None,
        before_id: int | None = None,
        gpu_type: str | None = None,
    ) -> tuple[list[Job], int]:
        """The newest ``limit`` jobs that match (oldest first), and how many match in all.
        ``name`` may hold ``*`` wildcards; ``before_id`` pages back from a job id;
        ``gpu_type``: jobs that asked for a type beginning with it, case aside (``H100``
        finds ``H100`` and ``h100-80gb``; a job that takes any type names none)."""
        q = select(Job)
        if states:
            q = q.where(col(Job.state).in_(list(states)))
        elif not include_finished:
            q = q.where(col(Job.state).in_(ordered(LISTED)))
        if user:
            q = q.where(Job.user == user)
        if team:
            q = q.where(Job.team == team)
        if name:
            q = q.where(col(Job.name).like(_literal(name).replace("*", "%"), escape="\\"))
        if gpu_type:  # the types are kept as a JSON list of strings: '["H100", "A100"]'
            q = q.where(cast(col(Job.gpu_types), String).ilike(f'%"{_literal(gpu_type)}%',
                                                                escape="\\"))
        if since is not None:
            q = q.where(col(Job.submitted_at) >= since)
        if array_id is not None:
            q = q.where(Job.array_id == array_id)
        with self.session() as s:
            total = s.exec(select(func.count()).select_from(q.subquery())).one()
            if before_id is not None:
                q = q.where(col(Job.id) < before_id)
            q = q.order_by(col(Job.id).desc()).limit(limit)
            return list(reversed(s.exec(q).all())), int(total)

    def pending(self) -> list[Job]:
        with self.session() as s:
            return list(s.exec(select(Job).where(Job.state == JobState.PENDING)).all())

    def active(self) -> list[Job]:
        with self.session() as s:
            return list(s.exec(select(Job).where(col(Job.state).in_(list(ACTIVE)))).all())

    def ended_before(self, job_ids: Iterable[int], cutoff: datetime) -> set[int]:
        """Which of these jobs ended for good before ``cutoff`` (their files may go)."""
        ids = list(job_ids)
        if not ids:
            return set()
        q = select(Job.id).where(col(Job.id).in_(ids), col(Job.state).in_(ordered(ENDED)),
                                 col(Job.ended_at) < cutoff)
        with self.session() as s:
            return {i for i in s.exec(q).all() if i is not None}

    def packages_in_use(self) -> set[str]:
        """Packages of the jobs that may still run (pending, running, lost awaiting a look)."""
        q = select(Job.package).where(col(Job.state).in_(ordered(LISTED)),
                                      col(Job.package).is_not(None))
        with self.session() as s:
            return {p for p in s.exec(q).all() if p}

    def history(self, job_id: int) -> list[JobEvent]:
        q = select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
        with self.session() as s:
            return list(s.exec(q).all())

    def allocations(
        self, job_id: int | None = None, *, open_only: bool = False, node: str | None = None
    ) -> list[Allocation]:
        q = select(Allocation)
        if job_id is not None:
            q = q.where(Allocation.job_id == job_id)
        if node is not None:
            q = q.where(Allocation.node == node)
        if open_only:
            q = q.where(col(Allocation.ended_at).is_(None))
        with self.session() as s:
            return list(s.exec(q.order_by(col(Allocation.id))).all())

    # -- writing ------------------------------------------------------------------------------

    def submit(self, new: NewJob) -> Job:
        """Insert the job and its first history row; returns only once committed (the first
        task, for an array)."""
        return self.submit_all(new)[0]

    def submitted(self, user: str, key: str) -> list[Job]:
        """The jobs a submit of ``user`` with Idempotency-Key ``key`` made (an array's tasks
        in order), or none."""
        with self.session() as s:
            first = s.exec(select(Job).where(Job.user == user,
                                             Job.idempotency_key == key)).first()
            if first is None or first.array_id is None:
                return [first] if first is not None else []
            return list(s.exec(select(Job).where(Job.array_id == first.array_id)
                               .order_by(col(Job.id))).all())

    def submit_all(self, new: NewJob) -> list[Job]:
        """Insert the job (one per index of an array) and its first history rows, in one
        transaction; returns only once committed. With an idempotency key the same user
        already submitted (the API looks first; two at once meet the unique index), the jobs
        of that first submit instead."""
        try:
            return self._insert(new)
        except IntegrityError:
            earlier = self.submitted(new.user, new.idempotency_key or "")
            if new.idempotency_key is None or not earlier:
                raise
            return earlier

    def _insert(self, new: NewJob) -> list[Job]:
        now = self.clock()
        r = new.request
        tasks = r.array_tasks()
        indices: Sequence[int | None] = tasks[0] if tasks else [None]
        jobs: list[Job] = []
        with self.session() as s:
            for index in indices:
                job = Job(
                    name=new.name, user=new.user, team=new.team, command=list(r.command),
                    env=dict(r.env), workdir=r.workdir, package=r.package,
                    gpus=r.gpus, nodes=r.nodes, priority=r.priority,
                    gpu_types=list(r.gpu_types) if r.gpu_types else None,
                    gpu_mem=r.gpu_mem_bytes, time_limit_s=r.time_limit_s, retries=r.retries,
                    state=JobState.PENDING,
                    submitted_at=now, no_preempt=r.no_preempt,
                    after=[d.model_dump() for d in r.after] or None,
                    array_index=index,
                    array_limit=tasks[1] if tasks and index is not None else None,
                    array_id=jobs[0].id if jobs else None, notify_url=new.notify_url,
                    idle_timeout_s=r.idle_timeout_s,
                    interactive=r.interactive.model_dump() if r.interactive else None,
                    idempotency_key=None if jobs else new.idempotency_key,
                    service_id=new.service_id,
                )
                s.add(job)
                s.flush()
                assert job.id is not None
                if index is not None and not jobs:
                    job.array_id = job.id
                s.add(JobEvent(job_id=job.id, state=JobState.PENDING, at=now, reason="submitted"))
                jobs.append(job)
            s.commit()
        return jobs

    def states(self, job_ids: Iterable[int]) -> dict[int, str]:
        """The current state of each of these jobs that exists."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        with self.session() as s:
            rows = s.exec(select(Job.id, Job.state).where(col(Job.id).in_(ids))).all()
        return {int(i): st for i, st in rows if i is not None}

    def attained(self, job_ids: Iterable[int]) -> dict[int, float]:
        """GPU-seconds the ended attempts of these jobs held (one allocation row per GPU):
        their attained service, which ranks a job without a time limit."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        q = (sa_select(col(Allocation.job_id), col(Allocation.started_at),
                       col(Allocation.ended_at))
             .where(col(Allocation.job_id).in_(ids), col(Allocation.ended_at).is_not(None)))
        had: dict[int, float] = {}
        with self.session() as s:
            for job_id, start, end in s.execute(q).all():
                had[job_id] = had.get(job_id, 0.0) + max(0.0, (end - start).total_seconds())
        return had

    def usage_intervals(self, since: datetime
                        ) -> list[tuple[str, str, str, datetime, datetime | None]]:
        """(team, user, node, start, end or None) of every GPU held since ``since``: the input
        of fair share (one row per GPU)."""
        q = (sa_select(col(Job.team), col(Job.user), col(Allocation.node),
                       col(Allocation.started_at), col(Allocation.ended_at))
             .join(Job, col(Job.id) == col(Allocation.job_id))
             .where((col(Allocation.ended_at).is_(None)) | (col(Allocation.ended_at) > since)))
        with self.session() as s:
            return [(t, u, n, a, b) for t, u, n, a, b in s.execute(q).all()]
