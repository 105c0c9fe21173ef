"""A runner told to withdraw before its start call comes refuses that start: the order in which
a threaded actor runs its calls is not the order they were sent, and a cancelled job must never
run (#17's companion: a cancel racing the start)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clusterctl.executor.runner import WITHDRAWN, JobRunner, RunnerError
from clusterctl.executor.types import LaunchSpec


def test_a_start_after_a_withdrawal_refuses_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    runner = JobRunner("ns", 7, 1, 0, run_root=str(tmp_path / "run"))
    assert runner.withdraw(5.0) is True  # nothing had started
    spec = LaunchSpec(job_id=7, attempt=1, gpus=0, nodes=1, env={}, workdir=str(tmp_path),
                      time_limit_s=None, kill_grace_s=5.0,
                      command=[sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    for _ in range(2):  # a retried start refuses too
        with pytest.raises(RunnerError, match=WITHDRAWN):
            runner.start(spec, None, None)
    assert runner.status().started is None and not marker.exists()
