"""Faults: the controller SIGKILLed while a job runs on a cluster started with `ray start`, and
a runner process killed under its job."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import ControllerProcess, clusterctl_argv

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.ray
PY = sys.executable

ONCE = """
import os, time
def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
runner = parent(os.getppid())  # the job's parent is the launch shim; the runner is above it
with open(os.environ["MARKER"], "a") as f:
    f.write(f"start attempt={os.environ['CLUSTERCTL_ATTEMPT']} pid={os.getpid()} "
            f"runner={runner}\\n")
print("started", flush=True)
if os.environ["CLUSTERCTL_ATTEMPT"] == "1":
    time.sleep(float(os.environ.get("NAP", "8")))
print("finished", flush=True)
"""


def _lines(path: Path, n: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return path.read_text().splitlines()
        time.sleep(0.2)
    raise AssertionError(f"{path} never had {n} lines")


def _submit_once(controller: ControllerProcess, tmp_path: Path, *options: str) -> tuple[int, Path]:
    """Submit ONCE.py, which logs each start (attempt, pid, runner pid) to a marker file."""
    wd = tmp_path / "w"
    wd.mkdir()
    (wd / "once.py").write_text(ONCE)
    marker = tmp_path / "marker"
    job_id = controller.submit(*options, "--env", f"MARKER={marker}", "--", PY, "once.py",
                               cwd=wd)
    return job_id, marker


def test_controller_crash_neither_kills_nor_duplicates_a_running_job(
        controller: ControllerProcess, tmp_path: Path) -> None:
    job_id, marker = _submit_once(controller, tmp_path, "--gpus", "2", "--env", "NAP=10")
    controller.wait_state(job_id, {"RUNNING"})
    _lines(marker, 1)
    controller.kill()
    time.sleep(2)
    controller.start()
    job = controller.wait_done(job_id, timeout=90)
    assert job["state"] == "SUCCEEDED", job
    assert len(marker.read_text().splitlines()) == 1, "the job ran twice"
    assert [h["state"] for h in job["history"]].count("RUNNING") == 1
    assert job["attempt"] == 1 and len(job["allocations"]) == 2
    out = controller.cli("logs", str(job_id)).stdout
    assert "started" in out and "finished" in out  # output from before and after the crash
    (node,) = controller.json("nodes")
    assert node["free_gpus"] == node["gpus"] == 4


def test_killed_runner_makes_the_job_lost_and_it_is_requeued_once(
        controller: ControllerProcess, tmp_path: Path) -> None:
    job_id, marker = _submit_once(controller, tmp_path, "--retries", "1", "--env", "NAP=120")
    first = _lines(marker, 1)[0]
    job_pid = int(first.split("pid=")[1].split()[0])
    runner_pid = int(first.split("runner=")[1].split()[0])
    os.kill(runner_pid, signal.SIGKILL)
    job = controller.wait_done(job_id, timeout=120)
    states = [h["state"] for h in job["history"]]
    assert job["state"] == "SUCCEEDED", job
    assert states.count("LOST") == 1 and job["requeues"] == 1 and job["attempt"] == 2
    assert states[states.index("LOST") + 1] == "PENDING"
    assert len(_lines(marker, 2)) == 2
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{job_pid}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{job_pid}"), "the lost attempt's process was left behind"
    assert {a["attempt"] for a in job["allocations"]} == {1, 2}
    assert all(a["ended_at"] for a in job["allocations"])


# Attempt 1 leaves a daemon that escapes into its own session (as a data loader or a
# `nohup` would) and records it; attempt 2 says whether that daemon still lives as it starts.
ESCAPE = """
import os, subprocess, sys, time
def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
out = os.environ["OUT"]
if os.environ["CLUSTERCTL_ATTEMPT"] == "1":
    d = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         start_new_session=True)
    shim = os.getppid()  # python <- (sh -c, unless it exec'd) <- the launch shim
    while b"clusterctl.executor.launch" not in open(f"/proc/{shim}/cmdline", "rb").read():
        shim = parent(shim)
    with open(out, "a") as f:
        f.write(f"daemon={d.pid} runner={parent(shim)}\\n")
    time.sleep(300)
else:
    daemon = int(open(out).read().split("daemon=")[1].split()[0])
    with open(out, "a") as f:
        f.write(f"retry daemon_alive={alive(daemon)}\\n")
"""


def test_no_process_of_a_lost_attempt_outlives_it(controller: ControllerProcess,
                                                   tmp_path: Path) -> None:
    """Issue #17's case: the runner's Ray worker is SIGKILLed while the job's grandchild (in a
    session of its own) runs on 2 GPUs; the retry lands on the same GPUs, and finds it dead."""
    wd = tmp_path / "w"
    wd.mkdir()
    (wd / "escape.py").write_text(ESCAPE)
    out = tmp_path / "out"
    job_id = controller.submit("--gpus", "2", "--retries", "1", "--env", f"OUT={out}", "--",
                               "sh", "-c", f"{PY} escape.py", cwd=wd)
    first = _lines(out, 1)[0]
    daemon = int(first.split("daemon=")[1].split()[0])
    os.kill(int(first.split("runner=")[1].split()[0]), signal.SIGKILL)
    try:
        job = controller.wait_done(job_id, timeout=120)
        assert job["state"] == "SUCCEEDED" and job["attempt"] == 2, job
        retry = _lines(out, 2)[1]
        assert "daemon_alive=False" in retry, (first, retry)
    finally:  # a failed run leaves no daemon behind (checked by its command line)
        with contextlib.suppress(OSError):
            if b"sleep(300)" in Path(f"/proc/{daemon}/cmdline").read_bytes():
                os.kill(daemon, signal.SIGKILL)


def test_lost_job_without_retries_stays_lost(controller: ControllerProcess, tmp_path: Path) -> None:
    job_id, marker = _submit_once(controller, tmp_path, "--env", "NAP=120")
    runner_pid = int(_lines(marker, 1)[0].split("runner=")[1].split()[0])
    os.kill(runner_pid, signal.SIGKILL)
    job = controller.wait_done(job_id, timeout=60)
    assert job["state"] == "LOST"
    assert controller.cli("wait", str(job_id)).returncode == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_a_second_controller_on_the_same_database_refuses_to_start(
        backend: str, ray_head: LocalRay, tmp_path: Path) -> None:
    """Two controllers on one database would both launch the same jobs (#16): the second
    stops before it starts anything, naming the host and process of the first."""
    from conftest import fresh_pg_database, pg_server

    databases = fresh_pg_database(pg_server()) if backend == "postgres" else None
    db = next(databases) if databases else f"sqlite:///{tmp_path / 'shared.db'}"
    first = ControllerProcess(tmp_path / "first", ray_head.address, ray_head.token_file, db_url=db)
    second = ControllerProcess(tmp_path / "second", ray_head.address, ray_head.token_file,
                               db_url=db)
    try:
        first.start()
        refused = subprocess.run([*clusterctl_argv(), *second.up_args], env=second.env,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1, refused.stderr
        assert "another controller uses" in refused.stderr and " pid " in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        first.kill()  # a crashed controller leaves nothing to clean up: the next one starts
        second.start()
    finally:
        first.stop()
        second.stop()
        if databases:
            databases.close()
