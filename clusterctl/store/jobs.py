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

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from clusterctl.states import ACTIVE, JobState, check_transition
from clusterctl.store.models import Allocation, Job, JobEvent

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
    workdir: str | None = None
    package: str | None = None


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
    ) -> list[Job]:
        q = select(Job)
        if states:
            q = q.where(col(Job.state).in_(list(states)))
        elif not include_finished:
            q = q.where(col(Job.state).in_([S.PENDING, S.STARTING, S.RUNNING, S.LOST]))
        if user:
            q = q.where(Job.user == user)
        q = q.order_by(col(Job.id).desc()).limit(limit)
        with self.session() as s:
            return list(reversed(s.exec(q).all()))

    def pending(self) -> list[Job]:
        with self.session() as s:
            return list(s.exec(select(Job).where(Job.state == S.PENDING)).all())

    def active(self) -> list[Job]:
        with self.session() as s:
            return list(s.exec(select(Job).where(col(Job.state).in_(list(ACTIVE)))).all())

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
        """Insert the job and its first history row; returns only once committed."""
        now = self.clock()
        job = Job(
            name=new.name, user=new.user, team=new.team, command=list(new.command),
            env=dict(new.env or {}), workdir=new.workdir, package=new.package, gpus=new.gpus,
            nodes=new.nodes, priority=new.priority, time_limit_s=new.time_limit_s,
            retries=new.retries, state=S.PENDING, submitted_at=now,
        )
        with self.session() as s:
            s.add(job)
            s.flush()
            assert job.id is not None
            s.add(JobEvent(job_id=job.id, state=S.PENDING, at=now, reason="submitted"))
            s.commit()
        return job

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
        values = {"state": new.value, "reason": reason, "version": Job.version + 1, **fields}
        result = s.execute(q.values(**values))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        event_attempt = fields.get("attempt", attempt)
        if event_attempt is None:
            event_attempt = s.exec(select(Job.attempt).where(Job.id == job_id)).one()
        s.add(JobEvent(job_id=job_id, state=new, attempt=event_attempt, reason=reason,
                       at=self.clock()))
        return True

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

    def start(self, job: Job, node_ids: Sequence[str]) -> int | None:
        """PENDING → STARTING with a new attempt number; returns it, or None if the job moved."""
        assert job.id is not None
        attempt = job.attempt + 1
        ok = self.transition(
            job.id, S.PENDING, S.STARTING, f"placed on {len(set(node_ids))} node(s)",
            at_attempt=job.attempt,
            values={"attempt": attempt, "placement": list(node_ids), "cancel_requested": False},
        )
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
            ok = self._transition(
                s, job.id, expected, new, reason, job.attempt,
                {"ended_at": ended, "exit_code": exit_code},
            )
            if not ok:
                return False
            s.execute(
                update(Allocation)
                .where(col(Allocation.job_id) == job.id, col(Allocation.attempt) == job.attempt,
                       col(Allocation.ended_at).is_(None))
                .values(ended_at=ended)
            )
            if new is S.LOST and job.requeues < job.retries:
                self._transition(
                    s, job.id, S.LOST, S.PENDING,
                    f"requeued after loss (retry {job.requeues + 1} of {job.retries})",
                    job.attempt,
                    {"requeues": job.requeues + 1, "placement": None, "ended_at": None,
                     "cancel_requested": False},
                )
            s.commit()
            return True

    def requeue(self, job: Job, reason: str) -> bool:
        """STARTING → PENDING for a launch abandoned before any process started."""
        assert job.id is not None
        return self.transition(job.id, S.STARTING, S.PENDING, reason, at_attempt=job.attempt,
                               values={"placement": None})

    def request_cancel(self, job_id: int, user: str, is_admin: bool) -> tuple[str, Job | None]:
        """Returns what happened: 'cancelled' (it was queued), 'requested' (the scheduler will
        signal it), 'ended' (already over), 'forbidden' (someone else's job) or 'missing'."""
        job = self.get(job_id)
        if job is None:
            return "missing", None
        if job.user != user and not is_admin:
            return "forbidden", job
        state = JobState(job.state)
        reason = f"cancelled by {user}"
        if state is S.PENDING:
            if self.transition(job_id, S.PENDING, S.CANCELLED, reason,
                               values={"ended_at": self.clock()}):
                return "cancelled", self.get(job_id)
            return self.request_cancel(job_id, user, is_admin)  # it just moved; look again
        if state in ACTIVE:
            with self.session() as s:
                result = s.execute(
                    update(Job)
                    .where(col(Job.id) == job_id, col(Job.state).in_(list(ACTIVE)))
                    .values(cancel_requested=True, reason=reason, version=Job.version + 1)
                )
                s.commit()
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return "requested", self.get(job_id)
            return self.request_cancel(job_id, user, is_admin)
        # LOST is only ever seen once retries are used up: the requeue shares its transaction.
        return "ended", job
