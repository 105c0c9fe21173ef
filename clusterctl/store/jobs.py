"""Job queries and guarded state changes.

Every change is ``UPDATE … WHERE id = :id AND state = :expected [AND attempt = :attempt]`` plus a
history row, in one transaction. Zero rows updated means someone else got there first (a cancel
racing a finish, two controllers), and the caller is told so instead of overwriting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clusterctl.states import (
    ACTIVE,
    ENDED,
    LISTED,
    TRANSITIONS,
    JobState,
    check_transition,
    ordered,
)
from clusterctl.store.db import lock_drains
from clusterctl.store.models import Allocation, Job, JobEvent, NodeDrain

S = JobState


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class NewJob:
    name: str
    user: str
    team: str
    command: list[str]
    gpus: int
    nodes: int = 1
    priority: int = 0
    time_limit_s: int | None = None
    retries: int = 0
    env: dict[str, str] | None = None
    gpu_types: list[str] | None = None
    gpu_mem: int | None = None
    workdir: str | None = None
    package: str | None = None
    no_preempt: bool = False
    after: list[dict[str, Any]] | None = None
    array_indices: Sequence[int] | None = None
    """``--array``: one job per index, submitted together."""
    array_limit: int | None = None
    notify_url: str | None = None
    idle_timeout_s: int | None = None
    interactive: dict[str, Any] | None = None
    idempotency_key: str | None = None
    """The submit's ``Idempotency-Key``: submitted again by the same user, it makes no job."""


@dataclass(frozen=True)
class HeldGpu:
    rank: int
    node: str
    node_id: str
    gpu_index: int
    gpu_uuid: str | None = None


class JobStore:
    def __init__(self, engine: Engine, clock: Any = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- reading ------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

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
    ) -> tuple[list[Job], int]:
        """The newest ``limit`` jobs that match (oldest first), and how many match in all.
        ``name`` may hold ``*`` wildcards; ``before_id`` pages back from a job id."""
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
            pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(col(Job.name).like(pattern.replace("*", "%"), escape="\\"))
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
            return list(s.exec(select(Job).where(Job.state == S.PENDING)).all())

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
        indices: Sequence[int | None] = new.array_indices or [None]
        jobs: list[Job] = []
        with self.session() as s:
            for index in indices:
                job = Job(
                    name=new.name, user=new.user, team=new.team, command=list(new.command),
                    env=dict(new.env or {}), workdir=new.workdir, package=new.package,
                    gpus=new.gpus, nodes=new.nodes, priority=new.priority,
                    gpu_types=list(new.gpu_types) if new.gpu_types else None,
                    gpu_mem=new.gpu_mem, time_limit_s=new.time_limit_s, retries=new.retries,
                    state=S.PENDING,
                    submitted_at=now, no_preempt=new.no_preempt, after=new.after,
                    array_index=index, array_limit=new.array_limit if index is not None else None,
                    array_id=jobs[0].id if jobs else None, notify_url=new.notify_url,
                    idle_timeout_s=new.idle_timeout_s, interactive=new.interactive,
                    idempotency_key=None if jobs else new.idempotency_key,
                )
                s.add(job)
                s.flush()
                assert job.id is not None
                if index is not None and not jobs:
                    job.array_id = job.id
                s.add(JobEvent(job_id=job.id, state=S.PENDING, at=now, reason="submitted"))
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

    def _transition(
        self,
        s: Session,
        job_id: int,
        expected: JobState,
        new: JobState,
        reason: str | None,
        attempt: int | None,
        fields: dict[str, Any],
    ) -> bool:
        check_transition(expected, new)
        q = update(Job).where(col(Job.id) == job_id, col(Job.state) == expected)
        if attempt is not None:
            q = q.where(col(Job.attempt) == attempt)
        if new in (S.PENDING, S.STARTING):  # never back to the queue, nor started, once
            q = q.where(col(Job.cancel_requested).is_(False))  # a cancel was asked
        values = {"state": new.value, "reason": reason, "version": Job.version + 1, **fields}
        result = s.execute(q.values(**values))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            if new is S.PENDING and S.CANCELLED in TRANSITIONS[expected]:
                return self._cancelled_instead(s, job_id, expected, attempt)
            return False
        event_attempt = fields.get("attempt", attempt)
        if event_attempt is None:
            event_attempt = s.exec(select(Job.attempt).where(Job.id == job_id)).one()
        s.add(JobEvent(job_id=job_id, state=new, attempt=event_attempt, reason=reason,
                       at=self.clock()))
        return True

    def _cancelled_instead(self, s: Session, job_id: int, expected: JobState,
                           attempt: int | None) -> bool:
        """An attempt that would go back to the queue (a restart, a start that failed, a
        preemption) while a cancel is asked for its job ends CANCELLED: a cancel is honoured
        by every later step, so a cancelled job never runs again."""
        row = s.exec(select(Job).where(Job.id == job_id)).one_or_none()
        if (row is None or row.state != expected.value or not row.cancel_requested
                or (attempt is not None and row.attempt != attempt)):
            return False
        return self._transition(s, job_id, expected, S.CANCELLED,
                                row.cancel_reason or "cancelled", attempt,
                                {"ended_at": self.clock()})

    def transition(
        self,
        job_id: int,
        expected: JobState,
        new: JobState,
        reason: str | None = None,
        *,
        at_attempt: int | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """Guarded change of one job's state (and ``values``); False if the job had moved."""
        with self.session() as s:
            ok = self._transition(s, job_id, expected, new, reason, at_attempt, values or {})
            if ok:
                s.commit()
            return ok

    def start(self, job: Job, node_ids: Sequence[str],
              devices: Sequence[Sequence[int]] | None = None,
              node_names: Sequence[str] = ()) -> int | None:
        """PENDING → STARTING with a new attempt number; returns it, or None if the job moved
        or one of ``node_names`` is drained. ``devices``: per rank, where the controller
        picked them (a mixed machine). The pass read the drains before it placed; they are
        read again here, in the transaction that places the job and after its row is
        written, so no start commits after a drain did (a job was placed 4.5 ms after one)."""
        assert job.id is not None
        attempt = job.attempt + 1
        with self.session() as s:
            lock_drains(s)
            ok = self._transition(
                s, job.id, S.PENDING, S.STARTING, f"placed on {len(set(node_ids))} node(s)",
                job.attempt,
                {"attempt": attempt, "placement": list(node_ids),
                 "gpu_devices": None if devices is None else [list(d) for d in devices],
                 "preempt_requested": False, "started_at": None},
            )
            if ok and node_names and s.exec(select(NodeDrain.node).where(
                    col(NodeDrain.node).in_(list(node_names)))).first() is not None:
                return None  # rolled back: it waits, and the next pass sees the drain
            if ok:
                s.commit()
        return attempt if ok else None

    def mark_running(
        self, job_id: int, attempt: int, held: Iterable[HeldGpu], started_at: datetime
    ) -> bool:
        """STARTING → RUNNING and the allocation records, together."""
        with self.session() as s:
            ok = self._transition(
                s, job_id, S.STARTING, S.RUNNING, "all ranks started", attempt,
                {"started_at": started_at, "exit_code": None},
            )
            if not ok:
                return False
            for g in held:
                s.add(Allocation(job_id=job_id, attempt=attempt, rank=g.rank, node=g.node,
                                 node_id=g.node_id, gpu_index=g.gpu_index,
                                 gpu_uuid=g.gpu_uuid, started_at=started_at))
            s.commit()
            return True

    def finish(
        self,
        job: Job,
        new: JobState,
        reason: str,
        *,
        exit_code: int | None = None,
        ended_at: datetime | None = None,
    ) -> bool:
        """End the current attempt: close its allocations, and requeue a LOST job whose retries
        are not used up (LOST → PENDING in the same transaction, both in the history)."""
        assert job.id is not None
        ended = ended_at or self.clock()
        expected = JobState(job.state)
        with self.session() as s:
            if new is S.LOST:  # lost while a cancel was asked: cancelled, never retried
                asked = s.exec(select(Job.cancel_requested, Job.cancel_reason)
                               .where(Job.id == job.id)).one_or_none()
                if asked is not None and asked[0]:
                    new, reason = S.CANCELLED, f"{asked[1] or 'cancelled'} ({reason})"
            ok = self._transition(
                s, job.id, expected, new, reason, job.attempt,
                {"ended_at": ended, "exit_code": exit_code},
            )
            if not ok:
                return False
            self._close_allocations(s, job.id, job.attempt, ended)
            if new is S.LOST and job.requeues < job.retries:
                self._transition(
                    s, job.id, S.LOST, S.PENDING,
                    f"requeued after loss (retry {job.requeues + 1} of {job.retries})",
                    job.attempt,
                    {"requeues": job.requeues + 1, "placement": None, "gpu_devices": None,
                     "ended_at": None},
                )
            s.commit()
            return True

    @staticmethod
    def _close_allocations(s: Session, job_id: int, attempt: int, ended: datetime) -> None:
        s.execute(
            update(Allocation)
            .where(col(Allocation.job_id) == job_id, col(Allocation.attempt) == attempt,
                   col(Allocation.ended_at).is_(None))
            .values(ended_at=ended)
        )

    def request_preempt(self, job_id: int, attempt: int, reason: str) -> bool:
        """Mark a running attempt for preemption before it is signalled; False if it ended,
        moved on or is already being cancelled or preempted."""
        with self.session() as s:
            result = s.execute(
                update(Job)
                .where(col(Job.id) == job_id, col(Job.attempt) == attempt,
                       col(Job.state).in_(list(ACTIVE)), col(Job.cancel_requested).is_(False),
                       col(Job.preempt_requested).is_(False), col(Job.no_preempt).is_(False))
                .values(preempt_requested=True, reason=reason, version=Job.version + 1)
            )
            s.commit()
        return result.rowcount == 1  # type: ignore[attr-defined]

    def preempted(self, job: Job, reason: str, *, ended_at: datetime | None = None) -> bool:
        """A preempted attempt ended: back to PENDING with its history, its GPUs released.
        Retries are not used up: being preempted is not the job's fault."""
        assert job.id is not None
        ended = ended_at or self.clock()
        with self.session() as s:
            ok = self._transition(
                s, job.id, JobState(job.state), S.PENDING, reason, job.attempt,
                {"placement": None, "gpu_devices": None, "preempt_requested": False,
                 "exit_code": None, "preemptions": Job.preemptions + 1},
            )
            if not ok:
                return False
            self._close_allocations(s, job.id, job.attempt, ended)
            s.commit()
            return True

    def requeue(self, job: Job, reason: str) -> bool:
        """STARTING → PENDING for a launch abandoned before any process started."""
        assert job.id is not None
        return self.transition(job.id, S.STARTING, S.PENDING, reason, at_attempt=job.attempt,
                               values={"placement": None, "gpu_devices": None,
                                       "preempt_requested": False})

    def update_pending(self, job_id: int, values: dict[str, Any]) -> bool:
        """Change a job that is still PENDING (False: it has moved on meanwhile)."""
        with self.session() as s:
            result = s.execute(update(Job).where(col(Job.id) == job_id,
                                                 col(Job.state) == S.PENDING.value)
                               .values(**values, version=Job.version + 1))
            s.commit()
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def set_idle_warned(self, job_id: int, at: datetime | None) -> None:
        with self.session() as s:
            s.execute(update(Job).where(col(Job.id) == job_id).values(idle_warned_at=at))
            s.commit()

    def request_cancel(self, job_id: int, user: str, is_admin: bool,
                       reason: str | None = None) -> tuple[str, Job | None]:
        """Returns what happened: 'cancelled' (it was queued), 'requested' (the scheduler will
        signal it), 'ended' (already over), 'forbidden' (someone else's job) or 'missing'.
        ``reason``: what the job's end says (default: who cancelled it)."""
        job = self.get(job_id)
        if job is None:
            return "missing", None
        if job.user != user and not is_admin:
            return "forbidden", job
        state = JobState(job.state)
        reason = reason or f"cancelled by {user}"
        asked = {"cancel_asked_at": self.clock(), "cancel_reason": reason}
        if state is S.PENDING:
            if self.transition(job_id, S.PENDING, S.CANCELLED, reason,
                               values={"ended_at": self.clock(), **asked}):
                return "cancelled", self.get(job_id)
            return self.request_cancel(job_id, user, is_admin, reason)  # it moved; look again
        if state in ACTIVE and job.cancel_requested:
            return "requested", job  # the first cancel's time and reason stand
        if state in ACTIVE:
            with self.session() as s:
                result = s.execute(
                    update(Job)
                    .where(col(Job.id) == job_id, col(Job.state).in_(list(ACTIVE)))
                    .values(cancel_requested=True, reason=reason, version=Job.version + 1,
                            **asked)
                )
                s.commit()
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return "requested", self.get(job_id)
            return self.request_cancel(job_id, user, is_admin, reason)
        # LOST is only ever seen once retries are used up: the requeue shares its transaction.
        return "ended", job
