"""`clusterctl run` (#19 item 2, without stdin and --pty yet): through the queue, saying why
it waits, streaming the output, exiting with the command's exit code; Ctrl-C cancels."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from harness import ControllerProcess, clusterctl_argv

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.ray
PY = sys.executable


@pytest.fixture(scope="module")
def controller(ray_head: LocalRay, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[ControllerProcess]:
    root = tmp_path_factory.mktemp("run")
    c = ControllerProcess(root / "ctl", ray_head.address, ray_head.token_file)
    c.cwd = root / "empty"
    c.cwd.mkdir()
    c.start()
    yield c
    c.stop()


def test_run_streams_the_output_and_exits_with_the_command_s_code(
        controller: ControllerProcess) -> None:
    script = "import sys, time\nprint('step 1', flush=True)\ntime.sleep(1)\n" \
             "print('oops', file=sys.stderr, flush=True)\nsys.exit(7)"
    r = controller.cli("run", "--gpus", "1", "--", PY, "-c", script)
    assert r.returncode == 7, r.stderr
    assert r.stdout.splitlines() == ["step 1", "oops"]  # the job's output, both streams
    assert "FAILED (exit code 7)" in r.stderr
    ok = controller.cli("run", "--", PY, "-c", "print('fine')")
    assert (ok.returncode, ok.stdout) == (0, "fine\n")
    bad = controller.cli("run", "--array", "0-3", "--", "true")
    assert bad.returncode == 2 and "--array" in bad.stderr


def test_run_says_why_it_waits(controller: ControllerProcess) -> None:
    first = controller.submit("--gpus", "1", "--", "sleep", "8")  # outlasts run's start
    r = controller.cli("run", "--after", str(first), "--", PY, "-c", "print('after')")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "after\n"
    assert f"waits: dependency: after job {first}" in " ".join(r.stderr.split()), r.stderr


def test_ctrl_c_cancels_the_job(controller: ControllerProcess) -> None:
    env = dict(controller.env)
    sleeper = "print('up', flush=True)\nimport time\ntime.sleep(300)"
    p = subprocess.Popen([*clusterctl_argv(), "run", "--name", "interrupted", "--", PY, "-c",
                          sleeper], env=env, cwd=controller.cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline() == "up\n"  # it runs, and we see it
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=90)
    assert p.returncode == 130, err
    assert "cancelling job" in err
    job = next(j for j in controller.json("jobs", "--all") if j["name"] == "interrupted")
    assert job["state"] == "CANCELLED"


def test_a_job_that_ends_before_run_attaches_still_shows_its_output(
        controller: ControllerProcess) -> None:
    """Short jobs race `run`'s attach: some end while it still waits, some before it connects,
    some while it is connected; every one shows all it printed, once."""
    for i in range(8):
        r = controller.cli("run", "--", "sh", "-c", f"echo quick-{i}; echo two-{i}; exit {i}")
        assert (r.returncode, r.stdout) == (i, f"quick-{i}\ntwo-{i}\n"), r.stderr
