"""The attempts' bookkeeping, driven through the Executor protocol by a cluster that never
grants the GPUs it reports (a stand-in for Ray at the protocol, with the real store): the
STARTING → PENDING cycle is bounded, and each try avoids the node that failed it."""

from __future__ import annotations

from pathlib import Path

from factories import new_job

from clusterctl.controller.attempts import Attempts
from clusterctl.controller.files import LogStore, PackageStore
from clusterctl.executor.types import (
    Launch,
    LaunchSpec,
    NodeInfo,
    Outcome,
    Phase,
    Progress,
    Started,
)
from clusterctl.states import JobState
from clusterctl.store import JobStore, make_engine, migrate


class NeverGranted:
    """Placement groups that stay pending: every poll says STARTING."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.released: list[tuple[int, int]] = []

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo("n1", "node-1", "127.0.0.1", 4, None, True)]

    def launch(self, spec: LaunchSpec, node_ids: list[str], package: bytes | None) -> Launch:
        return Launch(spec.job_id, spec.attempt, len(node_ids), actors=[],
                      launched_at=self.clock[0])

    def reattach(self, job_id: int, attempt: int, ranks: int) -> Launch | None:
        return None

    def poll(self, launch: Launch) -> Progress:
        return Progress(Phase.STARTING)

    def terminate(self, launch: Launch, grace_s: float | None) -> None:
        pass

    def withdraw(self, launch: Launch, grace_s: float) -> bool:
        return True  # no runner exists to start it

    def read_log(self, launch: Launch, rank: int, offset: int) -> bytes | None:
        return None

    def release(self, job_id: int, attempt: int, ranks: int) -> None:
        self.released.append((job_id, attempt))

    def runner_names(self) -> list[tuple[int, int, int]]:
        return []


def test_a_job_whose_gpus_are_never_granted_fails_after_three_tries(
        db_url: str, tmp_path: Path) -> None:
    migrate(db_url)
    jobs = JobStore(make_engine(db_url))
    clock = [0.0]
    executor = NeverGranted(clock)
    attempts = Attempts(jobs, executor, LogStore(tmp_path / "l"), PackageStore(tmp_path / "p"),
                        start_timeout_s=120, monotonic=lambda: clock[0])
    job = jobs.submit(new_job(gpus=2))
    assert job.id is not None
    for attempt in (1, 2, 3):
        pending = jobs.get(job.id)
        assert pending is not None and pending.state == JobState.PENDING
        attempts.launch(pending, ("n1",))
        clock[0] += 60
        attempts.progress()  # within the timeout: still starting
        assert jobs.get(job.id).state == JobState.STARTING  # type: ignore[union-attr]
        clock[0] += 61
        attempts.progress()
        assert "n1" in attempts.suspected()  # the next try goes elsewhere if it can
        assert executor.released[-1] == (job.id, attempt)
    done = jobs.get(job.id)
    assert done is not None and done.state == JobState.FAILED
    assert done.reason == "could not start: GPUs not granted by Ray within 120s, 3 times"
    reasons = [h.reason for h in jobs.history(job.id) if h.state == JobState.PENDING]
    assert reasons[1:] == [f"GPUs not granted by Ray within 120s (try {n} of 3)" for n in (1, 2)]


class EndsBeforeItIsSeenRunning(NeverGranted):
    """A rank that started and ended before the controller recorded its start (the database
    was away when its runner said STARTED): the first poll that answers says DONE."""

    def poll(self, launch: Launch) -> Progress:
        launch.started = [Started(0, 4242, ("0", "1"), "n1", "127.0.0.1", 10.0)]
        launch.outcomes = {0: Outcome(0, 0, None, False, False, 40.0)}
        return Progress(Phase.DONE)


def test_an_attempt_that_ended_while_its_start_went_unrecorded_still_ends(
        db_url: str, tmp_path: Path) -> None:
    """Chaos found it: such a job stayed STARTING for good (STARTING cannot become
    SUCCEEDED; every pass failed the same way). Its start is recorded first, with the GPUs it
    held, then its end."""
    migrate(db_url)
    jobs = JobStore(make_engine(db_url))
    clock = [0.0]
    attempts = Attempts(jobs, EndsBeforeItIsSeenRunning(clock), LogStore(tmp_path / "l"),
                        PackageStore(tmp_path / "p"), monotonic=lambda: clock[0])
    job = jobs.submit(new_job(gpus=2))
    assert job.id is not None
    attempts.launch(jobs.get(job.id), ("n1",))  # type: ignore[arg-type]
    attempts.progress()
    done = jobs.get(job.id)
    assert done is not None and (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    assert [h.state for h in jobs.history(job.id)] == [
        JobState.PENDING, JobState.STARTING, JobState.RUNNING, JobState.SUCCEEDED]
    assert sorted(a.gpu_index for a in jobs.allocations(job.id)) == [0, 1]


class RanBeforeTheCancel(NeverGranted):
    """A runner that started the command, which exited 0, before the cancel came, while the
    controller has not polled its answer yet: STARTING until the poll after the withdrawal."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__(clock)
        self.withdrawn: list[float] = []

    def withdraw(self, launch: Launch, grace_s: float) -> bool:
        self.withdrawn.append(grace_s)
        launch.terminating = True
        return False  # its GPUs were granted: its runner answers through the start's reply

    def poll(self, launch: Launch) -> Progress:
        if not self.withdrawn:
            return Progress(Phase.STARTING)
        if launch.started is None:
            launch.started = [Started(0, 4242, ("0",), "n1", "127.0.0.1", 10.0)]
            return Progress(Phase.STARTED)
        launch.outcomes = {0: Outcome(0, 0, None, False, False, 11.0)}
        return Progress(Phase.DONE)


def _cancel_while_starting(db_url: str, tmp_path: Path, executor: NeverGranted
                           ) -> tuple[JobStore, int, Attempts]:
    migrate(db_url)
    jobs = JobStore(make_engine(db_url))
    attempts = Attempts(jobs, executor, LogStore(tmp_path / "l"), PackageStore(tmp_path / "p"),
                        kill_grace_s=7, monotonic=lambda: executor.clock[0])
    job = jobs.submit(new_job(gpus=1))
    assert job.id is not None
    attempts.launch(jobs.get(job.id), ("n1",))  # type: ignore[arg-type]
    attempts.progress()
    assert jobs.request_cancel(job.id, "root", True)[0] == "requested"
    return jobs, job.id, attempts


def test_a_cancel_before_the_start_is_seen_keeps_the_outcome_of_a_job_that_ran(
        db_url: str, tmp_path: Path) -> None:
    """The race of #17 that a clean-clone run found: a job cancelled after its command had
    run to exit 0 but before the controller saw it start was CANCELLED at once. Its runner is
    asked first, and the job keeps what really happened."""
    executor = RanBeforeTheCancel([0.0])
    jobs, job_id, attempts = _cancel_while_starting(db_url, tmp_path, executor)
    for _ in range(3):
        attempts.progress()
    done = jobs.get(job_id)
    assert done is not None and (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    assert executor.withdrawn == [7]  # asked once, with the kill grace
    assert executor.released == [(job_id, 1)]


def test_a_cancel_before_the_gpus_are_granted_ends_the_job_at_once(
        db_url: str, tmp_path: Path) -> None:
    executor = NeverGranted([0.0])
    jobs, job_id, attempts = _cancel_while_starting(db_url, tmp_path, executor)
    attempts.progress()
    done = jobs.get(job_id)
    assert done is not None and done.state == JobState.CANCELLED
    assert executor.released == [(job_id, 1)]
