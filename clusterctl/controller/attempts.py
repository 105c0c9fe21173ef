"""The attempts that hold GPUs: launched through the executor, watched until they end, settled
in the store, and found again after a controller restart.

Every pass of the scheduler loop calls :meth:`Attempts.progress`; the executor's calls are
non-blocking or bounded, with no database transaction open. The end state is what the runners
report (``verdict.py``), stored with a guard on state and attempt: a job that moved
meanwhile (cancelled, another controller) is not overwritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from clusterctl.controller.files import LogStore, PackageStore
from clusterctl.controller.repeats import RepeatedErrors
from clusterctl.controller.unanswered import PollFailures
from clusterctl.controller.verdict import verdict
from clusterctl.executor.types import (
    Executor,
    Interactive,
    Launch,
    LaunchSpec,
    NodeInfo,
    Phase,
    RayUnavailable,
)
from clusterctl.states import ACTIVE, JobState
from clusterctl.store import HeldGpu, Job, JobStore

log = logging.getLogger(__name__)


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


class Attempts:
    def __init__(
        self,
        jobs: JobStore,
        executor: Executor,
        logs: LogStore,
        packages: PackageStore,
        *,
        kill_grace_s: float = 30.0,
        preempt_grace_s: float = 30.0,
        attach_grace_s: float = 300.0,
        start_timeout_s: float = 120.0,
        account_of: Callable[[str], str | None] = lambda user: None,
        fallback_account: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.executor = executor
        self.logs = logs
        self.packages = packages
        self.kill_grace_s = kill_grace_s
        self.preempt_grace_s = preempt_grace_s
        self.attach_grace_s = attach_grace_s
        self.start_timeout_s = start_timeout_s
        self.account_of = account_of
        """The Unix account a user's jobs run as (None: the account that runs Ray)."""
        self.fallback_account = fallback_account
        self.monotonic = monotonic
        self.clock = clock
        self.launches: dict[int, Launch] = {}
        """The attempts this controller launched or re-attached to, by job id."""
        self.nodes: Sequence[NodeInfo] = ()
        """The cluster as of the pass (names for the allocation records)."""
        self.suspects: dict[str, float] = {}
        self.suspect_hold_s = 60.0
        self.max_start_tries = 3
        self.failures, self.repeats = PollFailures(), RepeatedErrors()
        """Attempts whose runner did not answer their last polls (``unanswered.py``)."""
        self.condemned: dict[int, str] = {}
        """Jobs being ended because a node of theirs has a GPU fault, with the reason: they
        end LOST (requeued within their retries), whatever their exit code."""

    # -- restart ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """After a (re)start: re-attach to running attempts, settle the rest, remove orphans."""
        active = self.jobs.active()
        for job in active:
            assert job.id is not None
            ranks = len(job.placement or [])
            launch = self.executor.reattach(job.id, job.attempt, ranks) if ranks else None
            if launch is not None and launch.started is not None:
                # A job being preempted or cancelled is signalled again by the next pass.
                self.launches[job.id] = launch
                if job.state == JobState.STARTING:
                    self._mark_running(job, launch)
                log.info("re-attached to job %s attempt %s", job.id, job.attempt)
                continue
            self.executor.release(job.id, job.attempt, ranks)
            if job.preempt_requested:
                self.jobs.preempted(job, "preempted (ended while the controller was down)")
            elif job.state == JobState.STARTING:
                self.jobs.requeue(job, "controller restarted before the job started")
            else:
                self.jobs.finish(job, JobState.LOST, "runner gone while the controller was down")
        self.sweep(active)

    def sweep(self, active: list[Job] | None = None) -> None:
        """Remove the runners of attempts that are not active (a launch cut short, say)."""
        keep = {(j.id, j.attempt) for j in (self.jobs.active() if active is None else active)}
        ranks_of: dict[tuple[int, int], int] = {}
        for jid, att, rank in self.executor.runner_names():
            ranks_of[(jid, att)] = max(ranks_of.get((jid, att), 0), rank + 1)
        for (jid, att), ranks in ranks_of.items():
            if (jid, att) not in keep:
                log.info("removing orphan runners of job %s attempt %s", jid, att)
                self.executor.release(jid, att, ranks)

    # -- running jobs -------------------------------------------------------------------------

    def progress(self, active: list[Job] | None = None) -> None:
        """Move each running attempt on; ``active`` is the pass's read of the active jobs."""
        for job in self.jobs.active() if active is None else active:
            assert job.id is not None
            launch = self.launches.get(job.id)
            if launch is None or launch.attempt != job.attempt:
                continue  # another controller's, or settled by reconcile on its next start
            try:
                self._progress_one(job, launch)
            except RayUnavailable:
                raise  # the pass stops; the loop reconnects
            except Exception as e:
                self.repeats.error(f"progress of job {job.id} failed", e)

    def lose_on(self, failing: Mapping[str, str], active: list[Job]) -> None:
        """End the attempts placed on nodes drained for a GPU fault (``failing``: node name →
        reason); each is signalled once and ends LOST at its next progress."""
        names = {n.id: n.name for n in self.nodes}
        for job in active:
            assert job.id is not None
            launch = self.launches.get(job.id)
            bad = [names[n] for n in job.placement or [] if names.get(n) in failing]
            if launch is None or not bad or job.id in self.condemned:
                continue
            self.condemned[job.id] = f"node {bad[0]} out of service: {failing[bad[0]]}"
            log.warning("ending job %s: %s", job.id, self.condemned[job.id])
            if launch.started is not None and not launch.terminating:
                self.executor.terminate(launch, self.kill_grace_s)

    def _progress_one(self, job: Job, launch: Launch) -> None:
        assert job.id is not None
        condemned = self.condemned.get(job.id)
        if condemned is not None:
            self._progress_condemned(job, launch, condemned)
            return
        asked = job.cancel_requested or job.preempt_requested
        try:
            if asked and launch.started is not None:
                self._signal(job, launch)
            p = self.executor.poll(launch)
        except RayUnavailable:
            raise
        except Exception as e:  # this attempt's runner only: counted, then settled
            self._unanswered(job, launch, e)
            return
        self.failures.answered(job.id, launch.attempt)
        self._seen(launch, p.kind)
        if p.kind is Phase.STARTING:
            if asked:
                self._withdraw(job, launch)
            elif self.monotonic() - launch.launched_at > self.start_timeout_s:
                self._not_granted(job, launch)
            return
        if asked and launch.started is None and p.kind is not Phase.STARTED:
            self._end_as_asked(job, launch)  # its start refused, or lost: nothing ran
            return
        if p.kind is Phase.STARTED:  # it may have ended already: the signal then finds nothing
            self._mark_running(job, launch)
            if asked:
                self._signal(job, launch)
            return
        self._pull_logs(launch)
        if p.kind is Phase.RUNNING:
            return
        if p.kind is Phase.FAILED:
            self._end(job, launch, JobState.FAILED, p.error or "could not start", None)
        elif p.kind is Phase.LOST:
            if p.node_suspect:
                self.suspect(job.placement or [])
            last_seen = at(launch.seen_at) if launch.seen_at is not None else None
            if job.state == JobState.STARTING and launch.started is None and not p.node_suspect:
                self._not_started(job, launch, p.error or "runner lost before it started")
            elif job.preempt_requested:  # its GPUs are gone either way; retries stay unused
                self._end(job, launch, JobState.PENDING, job.reason or "preempted", None,
                          ended_at=last_seen)
            else:
                self._end(job, launch, JobState.LOST, p.error or "runner lost", None,
                          ended_at=last_seen)
        elif p.kind is Phase.DONE:
            self._pull_logs(launch, drain=True)
            state, reason, code = verdict(job, launch)
            ended = max(o.ended_at for o in launch.outcomes.values())
            self._end(job, launch, state, reason, code, ended_at=at(ended))

    def _withdraw(self, job: Job, launch: Launch) -> None:
        """Cancelled or preempted before its start was seen. Its GPUs never granted, nothing
        of it can run: it ends now. Otherwise (``terminating`` once known) its runners may be
        starting it, or have run it to its end (not yet polled): each refuses its start or ends
        what it started, and the attempt ends on that answer, so a job that ended on its own
        first keeps its outcome (#17) and a cancelled one never runs."""
        grace = self.kill_grace_s if job.cancel_requested else self.preempt_grace_s
        nothing_runs = not launch.terminating and self.executor.withdraw(launch, grace)
        if nothing_runs or self.monotonic() - launch.launched_at > self.start_timeout_s:
            self._end_as_asked(job, launch)

    def _end_as_asked(self, job: Job, launch: Launch) -> None:
        """Nothing started: nothing to checkpoint, the GPUs go back now."""
        self._end(job, launch,
                  JobState.CANCELLED if job.cancel_requested else JobState.PENDING,
                  job.reason or ("cancelled" if job.cancel_requested else "preempted"), None)

    def _unanswered(self, job: Job, launch: Launch, error: Exception) -> None:
        """A poll (or signal) of this attempt failed: a cancel of an attempt that never
        started ends it now (its runners are removed with it); otherwise it is settled LOST,
        within its retries, once its polls keep failing or its start timed out."""
        assert job.id is not None
        now = self.monotonic()
        rec = self.failures.failed(job.id, launch.attempt, error, now)
        if job.cancel_requested and launch.started is None:
            self._end(job, launch, JobState.CANCELLED,
                      job.cancel_reason or job.reason or "cancelled", None)
        elif self.failures.settle(rec, now, launch.launched_at, launch.started is not None,
                                  self.start_timeout_s):
            log.warning("job %s attempt %s settled LOST after %d failed polls: %s", job.id,
                        launch.attempt, rec.count, rec.cause)
            self._end(job, launch, JobState.LOST, rec.cause, None)

    def _seen(self, launch: Launch, phase: Phase) -> None:
        if phase in (Phase.STARTED, Phase.RUNNING):
            launch.seen_at = self.clock()

    def _progress_condemned(self, job: Job, launch: Launch, reason: str) -> None:
        p = self.executor.poll(launch)
        self._seen(launch, p.kind)
        if p.kind is Phase.STARTED:
            self._mark_running(job, launch)
            if not launch.terminating:
                self.executor.terminate(launch, self.kill_grace_s)
            return
        if p.kind is Phase.RUNNING:
            self._pull_logs(launch)
            return
        ended = None
        if p.kind is Phase.DONE:
            self._pull_logs(launch, drain=True)
            ended = at(max(o.ended_at for o in launch.outcomes.values()))
            if not any(o.terminated for o in launch.outcomes.values()):
                state, own, code = verdict(job, launch)  # it ended on its own first
                self._end(job, launch, state, own, code, ended_at=ended)
                return
        # Not started, lost with its node, or ended by our signal: LOST, within its retries.
        self._end(job, launch, JobState.LOST, reason, None, ended_at=ended)

    def _signal(self, job: Job, launch: Launch) -> None:
        """SIGTERM a started attempt that was cancelled (kill grace) or is being preempted (the
        preemption grace), once."""
        if not launch.terminating:
            self.executor.terminate(
                launch, self.kill_grace_s if job.cancel_requested else self.preempt_grace_s)

    def _mark_running(self, job: Job, launch: Launch) -> None:
        assert job.id is not None and launch.started is not None
        names = {n.id: n.name for n in self.nodes}
        held = [
            HeldGpu(rank=info.rank, node=names.get(info.node_id, info.node_id[:12]),
                    node_id=info.node_id, gpu_index=int(gpu))
            for info in launch.started
            for gpu in info.gpu_ids
        ]
        started = min(info.started_at for info in launch.started)
        self.jobs.mark_running(job.id, job.attempt, held, at(started))

    def _end(self, job: Job, launch: Launch, state: JobState, reason: str,
             exit_code: int | None, ended_at: datetime | None = None) -> None:
        assert job.id is not None
        fresh = self.jobs.get(job.id) or job  # the state may have moved since the pass began
        if (fresh.state == JobState.STARTING and launch.started is not None
                and fresh.attempt == job.attempt):
            # It started but its start went unrecorded (the database was away when the runner
            # said so): recorded now, with its GPUs, or it could never leave STARTING.
            self._mark_running(fresh, launch)
            fresh = self.jobs.get(job.id) or fresh
        if JobState(fresh.state) in ACTIVE and fresh.attempt == job.attempt:
            if state is JobState.PENDING:
                self.jobs.preempted(fresh, reason, ended_at=ended_at)
            else:
                self.jobs.finish(fresh, state, reason, exit_code=exit_code, ended_at=ended_at)
        self.launches.pop(job.id, None)
        self.condemned.pop(job.id, None)
        self.failures.forget(job.id)
        self.executor.release(job.id, job.attempt, launch.ranks)  # else swept on reconnection

    def _pull_logs(self, launch: Launch, drain: bool = False) -> None:
        for rank in range(launch.ranks):
            while True:
                offset = self.logs.size(launch.job_id, launch.attempt, rank)
                data = self.executor.read_log(launch, rank, offset)
                if data:
                    self.logs.append(launch.job_id, launch.attempt, rank, data)
                if not drain or not data:
                    break

    def _not_granted(self, job: Job, launch: Launch) -> None:
        """Ray did not grant the attempt's GPUs in time: try again elsewhere, a few times, then
        say why the job cannot start (the cycle STARTING → PENDING must not go on for ever,
        holding GPUs in Ray's books each time)."""
        self.suspect(job.placement or [])  # the next attempt goes elsewhere if it can
        self._not_started(job, launch, f"GPUs not granted by Ray within "
                                       f"{self.start_timeout_s:.0f}s")

    def _not_started(self, job: Job, launch: Launch, reason: str) -> None:
        """Back to the queue an attempt that never ran, without using a retry; a job whose
        attempts keep failing to start for the same reason fails, saying so."""
        assert job.id is not None
        self.launches.pop(job.id, None)
        self.executor.release(job.id, job.attempt, launch.ranks)
        tries = 1 + sum(1 for h in self.jobs.history(job.id)
                        if h.state == JobState.PENDING and (h.reason or "").startswith(reason))
        if tries >= self.max_start_tries:
            self.jobs.finish(job, JobState.FAILED, f"could not start: {reason}, {tries} times")
        else:
            self.jobs.requeue(job, f"{reason} (try {tries} of {self.max_start_tries})")

    # -- nodes not to trust yet ----------------------------------------------------------------

    def suspect(self, node_ids: Sequence[str]) -> None:
        """Place nothing on these nodes for ``suspect_hold_s``: a node whose runner stopped
        answering may be dead while Ray still lists it (Ray takes its heartbeat timeout to
        notice), and a retry placed there would sit STARTING until the start timeout."""
        now = self.monotonic()
        for node_id in node_ids:
            if node_id not in self.suspected():
                log.warning("node %s stopped answering; no new job goes there for %.0fs",
                            node_id[:12], self.suspect_hold_s)
        # Read from the API's threads too: rebuilt whole, never changed in place.
        kept = {n: t for n, t in self.suspects.items() if now - t < self.suspect_hold_s}
        self.suspects = kept | dict.fromkeys(node_ids, now)

    def suspected(self) -> set[str]:
        """Nodes held back now (read-only: the API's ``nodes`` asks from its own thread)."""
        now = self.monotonic()
        return {n for n, since in list(self.suspects.items()) if now - since < self.suspect_hold_s}

    # -- launching and signalling -------------------------------------------------------------

    def launch(self, job: Job, node_ids: tuple[str, ...],
               devices: tuple[tuple[int, ...], ...] | None = None) -> None:
        """STARTING with a new attempt, then the runners; a job cancelled meanwhile is left.
        ``devices``: per rank, the GPUs to use where the controller picked them."""
        assert job.id is not None
        names = [n.name for n in self.nodes if n.id in node_ids]
        attempt = self.jobs.start(job, node_ids, devices, names)
        if attempt is None:
            return  # cancelled or its node drained meanwhile
        env = {**job.env,
               "CLUSTERCTL_PREEMPT_GRACE": f"{self.preempt_grace_s:g}"}
        if job.array_index is not None:
            env["CLUSTERCTL_ARRAY_INDEX"] = str(job.array_index)
            env["CLUSTERCTL_ARRAY_JOB_ID"] = str(job.array_id)
        spec = LaunchSpec(
            job_id=job.id, attempt=attempt, command=list(job.command), gpus=job.gpus,
            nodes=job.nodes, env=env, workdir=job.workdir,
            time_limit_s=job.time_limit_s, kill_grace_s=self.kill_grace_s,
            account=self.account_of(job.user), fallback_account=self.fallback_account,
            devices=devices, serves=job.service_id is not None,
            interactive=Interactive(pty=bool(job.interactive.get("pty")),
                                    grace_s=self.attach_grace_s)
            if job.interactive is not None else None,
        )
        try:
            package = self.packages.get(job.package) if job.package else None
            self.launches[job.id] = self.executor.launch(spec, list(node_ids), package)
        except RayUnavailable:
            started = self.jobs.get(job.id)
            if started is not None:  # nothing ran: back to the queue (swept on reconnection)
                self.jobs.requeue(started, "Ray unavailable at launch")
            raise
        except Exception as e:
            log.exception("launch of job %s failed", job.id)
            self.executor.release(job.id, attempt, len(node_ids))
            started = self.jobs.get(job.id)
            if started is not None:
                self.jobs.finish(started, JobState.FAILED, f"launch failed: {e}")

    def terminate(self, job_id: int, grace_s: float) -> None:
        """SIGTERM an attempt that has started (SIGKILL after ``grace_s``); one that has not is
        ended by the next :meth:`progress`, which sees the job's cancel or preempt flag."""
        launch = self.launches.get(job_id)
        if launch is not None and launch.started is not None and not launch.terminating:
            self.executor.terminate(launch, grace_s)
