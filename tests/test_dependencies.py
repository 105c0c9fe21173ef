"""When a job with ``--after`` may be considered, and when it can never run."""

from __future__ import annotations

from clusterctl.scheduler import dependencies


def test_waits_until_every_dependency_has_ended() -> None:
    after = [{"job": 1, "ok": False}, {"job": 2, "ok": True}]
    b = dependencies.check(after, {1: "RUNNING", 2: "PENDING"})
    assert not b.ready and not b.broken and b.detail == "after job 1 (RUNNING), 2 (PENDING)"
    b = dependencies.check(after, {1: "FAILED", 2: "RUNNING"})
    assert not b.ready and not b.broken and b.detail == "after job 2 (RUNNING)"
    assert dependencies.check(after, {1: "FAILED", 2: "SUCCEEDED"}).ready
    assert dependencies.check(None, {}).ready


def test_ok_dependency_that_did_not_succeed_breaks_the_job() -> None:
    for state in ("FAILED", "CANCELLED", "TIMEOUT", "LOST"):
        b = dependencies.check([{"job": 5, "ok": True}], {5: state})
        assert b.broken and not b.ready and f"ended {state}" in b.detail
    # A job that is only preempted or requeued (PENDING again) has not ended.
    assert not dependencies.check([{"job": 5, "ok": True}], {5: "PENDING"}).broken


def test_a_missing_dependency_breaks_the_job() -> None:
    b = dependencies.check([{"job": 9, "ok": False}], {})
    assert b.broken and "9 does not exist" in b.detail
