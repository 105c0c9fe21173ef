"""Jobs' changes of state, each guarded (``jobs.py``'s docstring): a transition happens only
from the state its caller saw, with a history row, in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from clusterctl.states import (
    ACTIVE,
    TRANSITIONS,
    JobState,
    check_transition,
)
from clusterctl.store.columns import utcnow
from clusterctl.store.db import lock_drains
from clusterctl.store.models import Allocation, Job, JobEvent, NodeDrain


@dataclass(frozen=True)
class HeldGpu:
    rank: int
    node: str
    node_id: str
    gpu_index: int
    gpu_uuid: str | None = None


class JobChanges:
    def __init__(self, engine: Engine, clock: Any = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def get(self, job_id: int) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

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
        # never back to the queue, nor started, once a cancel was asked
        if new in (JobState.PENDING, JobState.STARTING):
            q = q.where(col(Job.cancel_requested).is_(False))
        values = {"state": new.value, "reason": reason, "version": Job.version + 1, **fields}
        result = s.execute(q.values(**values))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            if new is JobState.PENDING and JobState.CANCELLED in TRANSITIONS[expected]:
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
        return self._transition(s, job_id, expected, JobState.CANCELLED,
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
                s, job.id, JobState.PENDING, JobState.STARTING,
                f"placed on {len(set(node_ids))} node(s)",
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
                s, job_id, JobState.STARTING, JobState.RUNNING, "all ranks started", attempt,
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
            if new is JobState.LOST:  # lost while a cancel was asked: cancelled, never retried
                asked = s.exec(select(Job.cancel_requested, Job.cancel_reason)
                               .where(Job.id == job.id)).one_or_none()
                if asked is not None and asked[0]:
                    new, reason = JobState.CANCELLED, f"{asked[1] or 'cancelled'} ({reason})"
            ok = self._transition(
                s, job.id, expected, new, reason, job.attempt,
                {"ended_at": ended, "exit_code": exit_code},
            )
            if not ok:
                return False
            self._close_allocations(s, job.id, job.attempt, ended)
            if new is JobState.LOST and job.requeues < job.retries:
                self._transition(
                    s, job.id, JobState.LOST, JobState.PENDING,
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
                s, job.id, JobState(job.state), JobState.PENDING, reason, job.attempt,
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
        return self.transition(job.id, JobState.STARTING, JobState.PENDING, reason,
                               at_attempt=job.attempt,
                               values={"placement": None, "gpu_devices": None,
                                       "preempt_requested": False})

    def update_pending(self, job_id: int, values: dict[str, Any]) -> bool:
        """Change a job that is still PENDING (False: it has moved on meanwhile)."""
        with self.session() as s:
            result = s.execute(update(Job).where(col(Job.id) == job_id,
                                                 col(Job.state) == JobState.PENDING.value)
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
        if state is JobState.PENDING:
            if self.transition(job_id, JobState.PENDING, JobState.CANCELLED, reason,
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
