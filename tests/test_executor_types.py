"""The typed values a runner returns, also as a runner of the release before them answers (a
dict): a controller upgraded while jobs run must still read its running attempts."""

from __future__ import annotations

from clusterctl.executor.types import Outcome, RunnerStatus, Started


def test_dicts_of_an_older_runner_read_as_typed_values() -> None:
    started = {"rank": 1, "pid": 42, "gpu_ids": ["2", "3"], "node_id": "abc",
               "node_ip": "10.0.0.2", "started_at": 100.0}
    ended = {"rank": 1, "exit_code": 137, "signal": 9, "timed_out": False,
             "terminated": True, "ended_at": 160.0}
    status = RunnerStatus.of({"started": started, "outcome": ended, "start_error": None})
    assert status.started == Started(1, 42, ("2", "3"), "abc", "10.0.0.2", 100.0)
    assert status.outcome == Outcome(1, 137, 9, False, True, 160.0)
    assert RunnerStatus.of({"started": None, "outcome": None, "start_error": "no dir"}) \
        == RunnerStatus(None, None, "no dir")
    assert Started.of(status.started) is status.started  # typed values pass through
