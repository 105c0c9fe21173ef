"""Run directories a lost runner left on a node (#17, item 9): the next runner there removes
those of runners that are gone, whatever their job, and leaves live runners' alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from clusterctl.executor.runner import RUNNER_FILE, JobRunner, process_identity, runner_gone


def test_the_next_runner_removes_what_gone_runners_left(tmp_path: Path) -> None:
    ns = tmp_path / "ns"
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead_id = f"{gone.pid} 1"  # a pid that has exited (or was reused: another start time)
    layout = {
        "job-3-a1-r0": dead_id,  # lost with the Ray head: nobody will read it again
        "job-4-a2-r0": process_identity(os.getpid()),  # a live runner's
        "job-5-a1-r0": None,  # from before runners recorded themselves: left alone
    }
    for name, ident in layout.items():
        (ns / name).mkdir(parents=True)
        (ns / name / "output.log").write_text("x")
        if ident is not None:
            (ns / name / RUNNER_FILE).write_text(ident)
    assert runner_gone(ns / "job-3-a1-r0") and not runner_gone(ns / "job-4-a2-r0")

    runner = JobRunner("ns", 9, 1, 0, run_root=str(tmp_path))
    assert not runner_gone(runner.dir)  # it records itself
    runner._remove_earlier_run_dirs()
    assert sorted(p.name for p in ns.iterdir()) == ["job-4-a2-r0", "job-5-a1-r0", "job-9-a1-r0"]
