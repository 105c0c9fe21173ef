"""The launch shim and the job cgroups, with real processes: no process of a job outlives its
runner, however the runner dies and whatever the job did to escape (a double fork into a new
session), and a finished job leaves nothing running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterctl.executor import cgroups

SHIM = [sys.executable, "-m", "clusterctl.executor.launch"]

# A job that leaves a daemon behind: it double-forks into a new session (out of the process
# group the runner signals), writes its pid and sleeps.
def escaping_job(pidfile: Path, then: str = "sleep 300") -> list[str]:
    return ["sh", "-c", f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & {then}"]


# A stand-in for the runner: starts the shim as the runner does (its own session, the runner's
# pid for the PDEATHSIG check), prints the shim's pid, and waits to be killed.
FAKE_RUNNER = textwrap.dedent("""
    import os, subprocess, sys, time
    env = {**os.environ, "CLUSTERCTL_RUNNER_PID": str(os.getpid())}
    p = subprocess.Popen([sys.executable, "-m", "clusterctl.executor.launch", *sys.argv[1:]],
                         env=env, start_new_session=True)
    print(p.pid, flush=True)
    p.wait()
    time.sleep(300)
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going between open and read
        return False


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def wait_for(check, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def daemon_pid(pidfile: Path) -> int:
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()), "no daemon"
    return int(pidfile.read_text())


@pytest.fixture
def cgroup() -> Iterator[Path]:
    root = cgroups.job_root()
    if root is None:
        pytest.skip("no writable cgroup v2 hierarchy here")
    path = root / f"test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    cgroups.kill(path)
    with contextlib.suppress(OSError):
        root.rmdir()  # gone once no job's cgroup is in it


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test leaves running is killed: the daemons it started, by pid."""
    yield
    for pidfile in tmp_path.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text())
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"):  # still ours
                os.kill(pid, signal.SIGKILL)


RUNNERS: list[subprocess.Popen[str]] = []


def start_runner(job: list[str], env: dict[str, str] | None = None
                 ) -> tuple[subprocess.Popen[str], int]:
    runner = subprocess.Popen([sys.executable, "-c", FAKE_RUNNER, *job], text=True,
                              stdout=subprocess.PIPE, env={**os.environ, **(env or {})})
    RUNNERS.append(runner)
    assert runner.stdout is not None
    return runner, int(runner.stdout.readline())


@pytest.fixture(autouse=True)
def in_a_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shim marks its command's end in its working directory (under a runner, the run
    directory): here the test's own, not the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def no_runner_left() -> Iterator[None]:
    yield
    while RUNNERS:
        r = RUNNERS.pop()
        r.kill()
        r.wait()


def test_a_killed_runner_takes_every_process_of_the_job_with_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    runner, shim = start_runner(escaping_job(pidfile))
    daemon = daemon_pid(pidfile)
    assert os.getsid(daemon) != os.getsid(shim)  # it did leave the job's session
    runner.kill()  # SIGKILL, as when the Ray worker is killed
    runner.wait()
    assert wait_for(lambda: not alive(daemon) and not alive(shim), 5), "a job process lived on"


def test_a_finished_job_leaves_nothing_running_and_keeps_its_exit_code(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    r = subprocess.run([*SHIM, *escaping_job(pidfile, then="sleep 0.3; exit 3")], timeout=30)
    assert r.returncode == 3
    assert not alive(daemon_pid(pidfile))


def test_a_job_killed_by_a_signal_is_reported_so(tmp_path: Path) -> None:
    r = subprocess.run([*SHIM, "sh", "-c", "kill -TERM $$"], timeout=30)
    assert r.returncode == -signal.SIGTERM
    missing = subprocess.run([*SHIM, "no-such-command-xyz"], capture_output=True, text=True,
                             timeout=30)
    assert missing.returncode == 127 and "command not found" in missing.stderr


def test_the_cgroup_ends_a_job_whose_shim_was_killed(tmp_path: Path, cgroup: Path) -> None:
    """The backstop: with the shim itself SIGKILLed (nothing left to walk the tree), the
    rank's cgroup still holds every process, and killing it ends them."""
    pidfile = tmp_path / "daemon.pid"
    runner, shim = start_runner(escaping_job(pidfile), {"CLUSTERCTL_CGROUP": str(cgroup)})
    daemon = daemon_pid(pidfile)
    members = (cgroup / "cgroup.procs").read_text().split()
    assert str(shim) in members and str(daemon) in members
    os.kill(shim, signal.SIGKILL)
    time.sleep(0.3)
    assert alive(daemon)  # escaped the shim's end: only the cgroup has it now
    assert cgroups.kill(cgroup)
    assert not alive(daemon) and not cgroup.exists()
    runner.kill()
    runner.wait()


def test_earlier_attempts_are_found_by_job(tmp_path: Path) -> None:
    for n in ("job-7-a1-r0", "job-7-a2-r1", "job-7-a3-r0", "job-17-a1-r0", "other"):
        (tmp_path / n).mkdir()
    assert [p.name for p in cgroups.earlier_attempts(tmp_path, 7, 3)] == [
        "job-7-a1-r0", "job-7-a2-r1"]


def test_installations_sharing_a_node_keep_their_jobs_apart() -> None:
    """Job ids restart at 1 in every installation: a retry of job 1 in one must not end job 1
    of another that runs on the same node (each installation has its own cgroup folder)."""
    tag = uuid.uuid4().hex[:8]
    a, b = cgroups.job_root(f"test-a-{tag}"), cgroups.job_root(f"test-b-{tag}")
    if a is None or b is None:
        pytest.skip("no writable cgroup v2 hierarchy here")
    try:
        first = cgroups.create(a, 1, 1, 0)
        assert first is not None and first.parent != b
        assert cgroups.earlier_attempts(b, 1, 2) == []
        assert cgroups.earlier_attempts(a, 1, 2) == [first]
    finally:
        for root in (a, b):
            for child in root.iterdir():
                if child.is_dir():
                    cgroups.kill(child)
            root.rmdir()


def test_a_job_whose_shim_died_is_an_orphan_the_next_runner_ends(tmp_path: Path) -> None:
    """The shim SIGKILLed with its runner's process group (the Ray head gone with the job's
    runner): the job's own process dies with the shim, and what it left running is found as
    an orphan cgroup, which the next runner on the node kills before it starts anything."""
    root = cgroups.job_root(f"test-orphans-{uuid.uuid4().hex[:8]}")
    if root is None:
        pytest.skip("no writable cgroup v2 hierarchy here")
    path = cgroups.create(root, 5, 1, 0)
    assert path is not None
    pidfile = tmp_path / "daemon.pid"
    try:
        runner, shim = start_runner(escaping_job(pidfile), {"CLUSTERCTL_CGROUP": str(path)})
        daemon = daemon_pid(pidfile)
        # The job's own process is the shim's child. Not "every sh -c setsid... in the
        # cgroup": under load the job's shell may have forked `sleep` and not yet exec'd it,
        # and that fork (no parent-death signal of its own) rightly outlives the shim.
        top = [int(p) for p in (path / "cgroup.procs").read_text().split()
               if int(p) not in (shim, daemon) and _ppid(int(p)) == shim]
        assert top, "the job's own process is in its cgroup"
        assert cgroups.orphans(root) == []  # its shim lives: not an orphan
        os.kill(shim, signal.SIGKILL)
        assert wait_for(lambda: not any(alive(p) for p in top), 5), "the job outlived its shim"
        assert alive(daemon)
        assert cgroups.orphans(root) == [path]
        assert cgroups.kill(path) and not alive(daemon)
        runner.kill()
        runner.wait()
    finally:
        cgroups.kill(path)
        with contextlib.suppress(OSError):
            root.rmdir()
