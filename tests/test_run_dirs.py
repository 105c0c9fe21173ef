"""Run directories a lost runner left on a node (#17, item 9): the next runner there removes
those of runners that are gone, whatever their job, and leaves live runners' alone. Driven
through a real controller and Ray: the cleaning happens where a runner starts a job."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from harness import ControllerProcess

from clusterctl.executor.run_dir import RUNNER_FILE, process_identity, runner_gone

pytestmark = pytest.mark.ray


def test_the_next_runner_removes_what_gone_runners_left(controller: ControllerProcess) -> None:
    first = controller.submit("--", "pwd")
    assert controller.wait_done(first)["state"] == "SUCCEEDED"
    work = Path(controller.cli("logs", str(first)).stdout.strip())
    [own] = [d for d in (work, *work.parents) if d.name.startswith(f"job-{first}-a1-r")]
    ns = own.parent  # this installation's runs on the node

    gone = subprocess.Popen(["true"])
    gone.wait()
    layout = {
        "job-9003-a1-r0": f"{gone.pid} 1",  # a pid that has exited (or was reused since)
        "job-9004-a2-r0": process_identity(os.getpid()),  # a live runner's
        "job-9005-a1-r0": None,  # from before runners recorded themselves: left alone
    }
    for name, ident in layout.items():
        (ns / name).mkdir()
        (ns / name / "output.log").write_text("x")
        if ident is not None:
            (ns / name / RUNNER_FILE).write_text(ident)
    assert runner_gone(ns / "job-9003-a1-r0") and not runner_gone(ns / "job-9004-a2-r0")

    second = controller.submit("--", "true")
    assert controller.wait_done(second)["state"] == "SUCCEEDED"
    left = {p.name for p in ns.iterdir()}
    assert "job-9003-a1-r0" not in left, left  # the gone runner's: removed
    assert {"job-9004-a2-r0", "job-9005-a1-r0"} <= left, left  # live, and unknown: kept
    for name in ("job-9004-a2-r0", "job-9005-a1-r0"):
        assert (ns / name / "output.log").read_text() == "x"
