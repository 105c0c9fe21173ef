"""How an attempt ends, from its ranks' outcomes and what was asked of it: the end state is
what happened (a job that exited before a cancel's signal reached it keeps its own outcome)."""

from __future__ import annotations

from clusterctl.controller.verdict import verdict
from clusterctl.executor.types import Launch, Outcome
from clusterctl.states import JobState
from clusterctl.store import Job


def ended(*codes: int, terminated: bool = False, timed_out: bool = False) -> Launch:
    launch = Launch(job_id=1, attempt=1, ranks=len(codes), actors=[])
    launch.outcomes = {r: Outcome(r, c, None, timed_out, terminated, 100.0 + r)
                       for r, c in enumerate(codes)}
    return launch


def job(**flags: object) -> Job:
    return Job(id=1, name="j", user="u", team="t", command=["true"], **flags)


def test_a_cancel_that_reached_the_job_cancels_it() -> None:
    state, reason, code = verdict(job(cancel_requested=True, reason="cancelled by u"),
                                  ended(143, terminated=True))
    assert (state, reason, code) == (JobState.CANCELLED, "cancelled by u", 143)


def test_a_job_that_ended_before_the_cancel_keeps_its_outcome() -> None:
    assert verdict(job(cancel_requested=True), ended(0))[0] is JobState.SUCCEEDED
    assert verdict(job(cancel_requested=True), ended(0, 3))[:2] == (
        JobState.FAILED, "exit code 3 on rank 1")


def test_preempted_timed_out_and_plain_ends() -> None:
    assert verdict(job(preempt_requested=True), ended(0, terminated=True))[0] is JobState.PENDING
    assert verdict(job(preempt_requested=True), ended(0))[0] is JobState.SUCCEEDED
    assert verdict(job(time_limit_s=60), ended(137, timed_out=True))[:2] == (
        JobState.TIMEOUT, "time limit of 60s reached")
    assert verdict(job(), ended(0, 0)) == (JobState.SUCCEEDED, "exit code 0", 0)
