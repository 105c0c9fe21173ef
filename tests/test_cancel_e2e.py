"""A cancel is never lost (#37): jobs cancelled in every state (running, starting, queued,
held, array tasks), the controller killed (SIGKILL) right after the API answered, started
again: none of them ever runs again, on SQLite and PostgreSQL. Before, a job cancelled while
its start was stuck went back to the queue on the restart and ran to SUCCEEDED."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import ControllerProcess

from clusterctl.executor.local_ray import start_local_ray, stop_process

# Takes GPUs in Ray's books behind the controller's back, so that a job it places stays
# STARTING: Ray does not grant its placement group (as when a runner is stuck starting).
HOLD = """
import sys, time, ray
from ray.util.placement_group import placement_group
ray.init(address=sys.argv[1], namespace="cancel-test-holder", log_to_driver=False)
pg = placement_group([{"GPU": float(sys.argv[2])}])
ray.get(pg.ready(), timeout=120)
print("held", flush=True)
time.sleep(3600)
"""
JOB = "echo start $CLUSTERCTL_JOB_ID $CLUSTERCTL_ATTEMPT >> {mark}; sleep 600"


def ray_driver_of(c: ControllerProcess) -> int:
    """The pid of the controller's Ray driver process (``executor/ray_driver.py``)."""
    assert c.proc is not None
    pid = c.proc.pid
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"clusterctl.executor.ray_driver" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise AssertionError("no Ray driver process under the controller")


def test_no_cancelled_job_runs_again_after_a_controller_crash(db_url: str,
                                                              tmp_path: Path) -> None:
    mark = tmp_path / "starts"
    # A Ray head of its own: what Ray grants must not depend on what earlier tests left.
    ray_head = start_local_ray(tmp_path / "ray", num_gpus=4, node_name="node-a",
                               gpu_model="simulated", num_cpus=2)
    c = ControllerProcess(tmp_path / "ctl", ray_head.address, ray_head.token_file, db_url=db_url)
    holder = None
    try:
        c.start()

        def submit(*args: str) -> int:
            return c.submit(*args, "--", "sh", "-c", JOB.format(mark=mark))

        running = submit("--gpus", "1")
        c.wait_state(running, {"RUNNING"})
        held_log = tmp_path / "holder.log"
        with held_log.open("w") as err:
            holder = subprocess.Popen([sys.executable, "-c", HOLD, ray_head.address, "3"],
                                      stdout=subprocess.PIPE, stderr=err, text=True,
                                      env={**os.environ, "RAY_AUTH_MODE": "token",
                                           "RAY_AUTH_TOKEN_PATH": str(ray_head.token_file)})
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held", held_log.read_text()[-2000:]
        starting = submit("--gpus", "1")
        c.wait_state(starting, {"STARTING"})
        queued = submit("--gpus", "4")
        held = submit("--gpus", "4")
        assert c.cli("hold", str(held)).returncode == 0
        array = c.cli("submit", "--gpus", "4", "--array", "0-1", "--", "true")
        tasks = [int(line) for line in array.stdout.split()]
        assert array.returncode == 0 and len(tasks) == 2, array.stderr
        everyone = [running, starting, queued, held, *tasks]
        # The controller's door to Ray stops answering (as when Ray's calls fail, or a runner
        # was killed starting): the API takes the cancels, no pass can act on them, and the
        # controller is killed right after the last answer.
        driver = ray_driver_of(c)
        os.kill(driver, signal.SIGSTOP)
        try:
            for job in everyone:
                r = c.api("POST", f"/v1/jobs/{job}/cancel")
                assert r.status_code == 200, r.text
            c.kill()
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may go with the controller
                os.kill(driver, signal.SIGKILL)

        stop_process(holder, 10)
        holder = None
        c.start()
        for job in everyone:
            assert c.wait_done(job)["state"] == "CANCELLED", c.show(job)
        c.settle(passes=3)  # passes that began after all of them ended: nothing starts
        starts = mark.read_text().split("\n")
        assert starts == [f"start {running} 1", ""], starts  # only the first start, once
        shown = c.show(starting)
        assert shown["cancel_reason"] == "cancelled by root" and shown["cancel_asked_at"]
        assert [h["state"] for h in shown["history"]][-1] == "CANCELLED"
        assert "PENDING" not in [h["state"] for h in shown["history"]][1:], shown["history"]
        text = c.cli("show", str(starting)).stdout
        assert "cancel: asked" in text and "took effect" in text, text
    finally:
        if holder is not None:
            stop_process(holder, 10)
        c.stop()
        ray_head.stop()


def test_a_runner_killed_by_the_memory_monitor_is_settled_and_a_cancel_ends_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The incident's cause on a real Ray: its memory monitor, told the node is out of memory
    (a threshold of 1%), kills each runner while it starts, so every poll of the attempt
    raises. A job cancelled meanwhile ends CANCELLED; the other leaves STARTING within the
    start timeout, LOST with the cause, and every GPU is free again."""
    monkeypatch.setenv("RAY_memory_usage_threshold", "0.01")
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "100")
    head = start_local_ray(tmp_path / "ray", num_gpus=2, node_name="node-a",
                           gpu_model="simulated", num_cpus=2)
    monkeypatch.delenv("RAY_memory_usage_threshold")  # the controller's own processes: as ever
    c = ControllerProcess(tmp_path / "ctl", head.address, head.token_file)
    try:
        c.start()
        doomed = c.submit("--", "true")
        cancelled = c.submit("--", "true")
        c.wait_state(cancelled, {"STARTING"})
        started = time.monotonic()
        r = c.api("POST", f"/v1/jobs/{cancelled}/cancel")
        assert r.status_code == 200, r.text
        assert c.wait_done(cancelled, timeout=60)["state"] == "CANCELLED", c.show(cancelled)
        job = c.wait_done(doomed, timeout=180)
        assert time.monotonic() - started < 150, job["history"]  # the start timeout is 120 s
        assert job["state"] in ("LOST", "FAILED"), job["history"]
        assert "out of memory" in job["reason"], job["history"]
        [node] = c.json("nodes")
        assert node["free_gpus"] == 2, node
        log = (c.root / "controller.log").read_text()
        assert log.count("out of memory") <= 8, log  # counted, not one line per pass
    finally:
        c.stop()
        head.stop()
