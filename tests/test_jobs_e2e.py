"""End to end through the `clusterctl` command: a real controller, real HTTP, real Ray with
4 simulated GPUs, real SQLite."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from harness import ControllerProcess, clusterctl_argv

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.ray
PY = sys.executable


@pytest.fixture(scope="module")
def shared_controller(ray_head: LocalRay,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    """One controller for the module: its tests need no installation of their own."""
    root = tmp_path_factory.mktemp("jobs")
    c = ControllerProcess(root / "ctl", ray_head.address, ray_head.token_file)
    c.cwd = root / "empty"  # not the data directory, which grows with every test
    c.cwd.mkdir()
    c.start()
    yield c
    c.stop()


@pytest.fixture
def controller(shared_controller: ControllerProcess) -> Iterator[ControllerProcess]:
    yield shared_controller
    shared_controller.end_live_jobs()  # each test starts on an idle cluster


def workdir(tmp_path: Path, **scripts: str) -> Path:
    d = tmp_path / "work"
    d.mkdir(exist_ok=True)
    for name, body in scripts.items():
        (d / f"{name}.py").write_text(body)
    return d


SHOW_GPUS = """
import os
print("devices=" + os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
print("order=" + os.environ["CUDA_DEVICE_ORDER"], flush=True)
print("job=" + os.environ["CLUSTERCTL_JOB_ID"], flush=True)
print("ray_env=" + ",".join(sorted(k for k in os.environ if k.startswith("RAY_"))), flush=True)
print("custom=" + os.environ.get("CUSTOM", ""), flush=True)
"""


def test_two_gpu_job_sees_exactly_two_devices(controller: ControllerProcess, tmp_path: Path
        ) -> None:
    wd = workdir(tmp_path, show=SHOW_GPUS)
    job_id = controller.submit("--gpus", "2", "--env", "CUSTOM=hello", "--", PY, "show.py",
                               cwd=wd)
    r = controller.cli("wait", str(job_id))
    assert r.returncode == 0, r.stdout + r.stderr
    out = controller.cli("logs", str(job_id)).stdout
    devices = out.split("devices=")[1].splitlines()[0].split(",")
    assert len(devices) == 2 and len(set(devices)) == 2
    assert "order=PCI_BUS_ID" in out and f"job={job_id}" in out
    # No Ray variable (auth mode, token path, address) reaches the job's environment. This
    # shows only that: the job still runs as the account that runs Ray and may read the token
    # file itself, which is the isolation issue's (#16) to close.
    assert "\nray_env=\n" in out and "custom=hello" in out
    job = controller.show(job_id)
    assert job["state"] == "SUCCEEDED" and job["exit_code"] == 0
    assert sorted(str(a["gpu_index"]) for a in job["allocations"]) == sorted(devices)
    assert all(a["node"] == "node-a" and a["ended_at"] for a in job["allocations"])
    assert [h["state"] for h in job["history"]] == ["PENDING", "STARTING", "RUNNING",
                                                     "SUCCEEDED"]
    for key in ("id", "name", "user", "team", "state", "gpus", "nodes", "priority",
                "submitted_at", "started_at", "ended_at", "exit_code", "history",
                "allocations"):
        assert key in job
    assert datetime.fromisoformat(job["started_at"]).tzinfo is not None
    # The controller's files are its own: no more 0644 database or logs (#16).
    db = Path(controller.db_url.removeprefix("sqlite:///"))
    logs = list((controller.data_dir / "logs").rglob("*.log"))
    assert logs and all(p.stat().st_mode & 0o777 == 0o600 for p in [db, *logs])
    assert controller.data_dir.stat().st_mode & 0o777 == 0o700


def test_failing_and_missing_commands_fail_with_their_exit_codes(
        controller: ControllerProcess, tmp_path: Path) -> None:
    failing = controller.submit("--", PY, "-c", "import sys; print('bad'); sys.exit(7)")
    missing = controller.submit("--", "no-such-command-xyz")
    assert controller.cli("wait", str(failing)).returncode == 1
    assert controller.cli("wait", str(missing)).returncode == 1
    f, m = controller.show(failing), controller.show(missing)
    assert (f["state"], f["exit_code"]) == ("FAILED", 7)
    assert (m["state"], m["exit_code"]) == ("FAILED", 127)
    assert "command not found: no-such-command-xyz" in controller.cli("logs", str(missing)).stdout


def test_a_batch_script_with_directives_runs_with_its_run_bits_and_links(
        controller: ControllerProcess, tmp_path: Path) -> None:
    """#19 item 1: ``submit run.sh ARGS`` as sbatch would: its #CLUSTERCTL lines give flags
    (the command line wins), the shipped directory keeps run bits and inner links."""
    wd = tmp_path / "project"
    (wd / "lib").mkdir(parents=True)
    tool = wd / "lib" / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool \"$1\"\n")
    tool.chmod(0o755)
    os.symlink("lib/tool.sh", wd / "tool")
    run = wd / "run.sh"
    run.write_text("#!/bin/sh\n#CLUSTERCTL --gpus 2 --name from-script\n"
                   "# an ordinary comment\n#CLUSTERCTL --time-limit 10m  # ten minutes\n"
                   "set -e\n#CLUSTERCTL --gpus 3\n"  # past the leading block: a comment
                   "./tool \"$1\"\necho gpus=$CUDA_VISIBLE_DEVICES\n")
    run.chmod(0o755)
    job_id = controller.submit("--name", "from-cli", "run.sh", "hello", cwd=wd)
    r = controller.cli("wait", str(job_id))
    assert r.returncode == 0, controller.cli("logs", str(job_id)).stdout
    job = controller.show(job_id)
    assert (job["name"], job["gpus"], job["time_limit_s"]) == ("from-cli", 2, 600)
    assert job["command"] == ["./run.sh", "hello"]
    out = controller.cli("logs", str(job_id)).stdout
    assert "tool hello" in out and len(out.split("gpus=")[1].split()[0].split(",")) == 2

    plain = wd / "plain.sh"  # no run bit: run through its #! line, as sbatch would
    plain.write_text(f"#!{PY}\nprint('python ran it')\n")
    job_id = controller.submit("plain.sh", cwd=wd)
    assert controller.cli("wait", str(job_id)).returncode == 0
    assert "python ran it" in controller.cli("logs", str(job_id)).stdout

    before = len(controller.json("jobs", "--all"))
    bad = wd / "bad.sh"
    bad.write_text("#!/bin/sh\n#CLUSTERCTL --gpuz 2\ntrue\n")
    r = controller.cli("submit", "bad.sh", cwd=wd)
    assert r.returncode == 2 and r.stderr.startswith("error: #CLUSTERCTL: bad.sh: "), r.stderr
    assert "--gpuz" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad.write_text("#!/bin/sh\n#CLUSTERCTL --gpus 0\ntrue\n")
    r = controller.cli("submit", "bad.sh", cwd=wd)
    assert r.returncode == 2 and r.stderr.startswith("error: --gpus:"), r.stderr
    assert len(controller.json("jobs", "--all")) == before  # nothing stored


def test_listing_filters_and_pages_cancel_ranges_and_arrays_and_wait_timeout(
        controller: ControllerProcess) -> None:
    """#19 item 7: `jobs` filters, never cuts short silently, and the API pages; `cancel`
    takes ranges and whole arrays; `wait --timeout` exits 3, and 1 only for a job that did
    not succeed."""
    sweep = [controller.submit("--name", f"sweep-{i}", "--", "sleep", "300") for i in range(5)]
    other = controller.submit("--name", "other", "--", "sleep", "300")
    r = controller.cli("jobs", "--name", "sweep-*", "--limit", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert [j["id"] for j in json.loads(r.stdout)] == sweep[-2:]  # the newest, oldest first
    assert "2 of 5 jobs shown" in r.stderr and "--limit 5" in r.stderr
    page = controller.api("GET", f"/v1/jobs?name=sweep-*&limit=2&before={sweep[-2]}")
    assert [j["id"] for j in page.json()] == sweep[1:3] and page.headers["X-Total-Count"] == "5"
    mine = controller.json("jobs", "--team", controller.show(other)["team"], "--since", "1h")
    assert {sweep[0], other} <= {j["id"] for j in mine}
    assert controller.json("jobs", "--team", "nobody-here") == []
    r = controller.cli("jobs", "--name", "sweep-*")
    assert r.returncode == 0 and "shown" not in r.stderr  # all of them: nothing to say
    typed = controller.submit("--gpus", "simulated:1", "--name", "typed", "--", "true")
    found = {j["id"] for j in controller.json("jobs", "--all", "--gpu-type", "SIMUL")}
    assert typed in found and not found & {*sweep, other}  # those take any type
    assert controller.json("jobs", "--all", "--gpu-type", "sim_lated") == []  # a type, no pattern
    for bad, field in ((["--limit", "0"], "--limit"), (["--since", "soon"], "--since"),
                       (["--team", "a b"], "--team"), (["--gpu-type", "H100%"], "--gpu-type")):
        r = controller.cli("jobs", *bad)
        assert r.returncode == 2 and r.stderr.startswith(f"error: {field}:"), (bad, r.stderr)

    r = controller.cli("wait", str(other), "--timeout", "1s")
    assert r.returncode == 3 and "timed out after 1s" in r.stderr, r.stderr
    assert controller.cli("wait", "999999", "--timeout", "1s").returncode == 2

    r = controller.cli("cancel", f"{sweep[0]}-{sweep[2]}", str(sweep[4]), "--json")
    assert r.returncode == 0, r.stderr
    assert [d["id"] for d in json.loads(r.stdout)] == [*sweep[:3], sweep[4]]
    for job_id in [*sweep[:3], sweep[4]]:
        assert controller.wait_done(job_id)["state"] == "CANCELLED"
    assert controller.show(sweep[3])["state"] in ("PENDING", "RUNNING")
    tasks = [int(i) for i in controller.cli("submit", "--array", "0-3", "--", "sleep",
                                            "300").stdout.split()]
    r = controller.cli("cancel", "--array", str(tasks[0]))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 4, r.stdout + r.stderr
    assert all(controller.wait_done(t)["state"] == "CANCELLED" for t in tasks)
    r = controller.cli("wait", str(tasks[0]))
    assert r.returncode == 1 and "CANCELLED" in r.stdout
    assert controller.cli("cancel", "9-3").returncode == 2


def test_hold_release_and_update_a_pending_job(controller: ControllerProcess) -> None:
    """#19 item 7: Slurm's hold, release and update, for pending jobs, within the owner's
    rights."""
    blocker = controller.submit("--gpus", "4", "--", "sleep", "300")
    controller.wait_state(blocker, {"RUNNING"})
    job = controller.submit("--", "sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES")
    r = controller.cli("hold", str(job), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["held_by"], r.stderr
    shown = controller.wait_state(job, {"PENDING"})
    deadline = time.monotonic() + 30
    while (shown := controller.show(job)).get("wait_reason") != "held":
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)
    assert shown["wait_detail"].startswith("held by ") and "release" in shown["wait_detail"]
    assert "held" in controller.cli("jobs").stdout

    r = controller.cli("update", str(job), "--priority", "-1", "--time-limit", "1h",
                       "--gpus", "2", "--json")
    assert r.returncode == 0, r.stderr
    changed = controller.show(job)
    assert (changed["priority"], changed["time_limit_s"], changed["gpus"]) == (-1, 3600, 2)
    r = controller.cli("update", str(job), "--gpus", "99")
    assert r.returncode == 2 and r.stderr.startswith("error: --gpus:"), r.stderr
    r = controller.cli("hold", str(blocker))  # running: too late to hold
    assert r.returncode == 1 and "only a pending job can be held" in r.stderr

    ida = json.loads(controller.cli("admin", "user", "add", "ida", "--team", "t2",
                                    "--json").stdout)["token"]
    r = controller.cli("release", str(job), token=ida)
    assert r.returncode == 1 and "belongs to" in r.stderr
    r = controller.cli("update", str(job), "--priority", "9", token=ida)
    assert r.returncode == 1 and "belongs to" in r.stderr

    assert controller.cli("release", str(job)).returncode == 0
    assert controller.cli("cancel", str(blocker)).returncode == 0
    assert controller.wait_done(job)["state"] == "SUCCEEDED"
    out = controller.cli("logs", str(job)).stdout
    assert len(out.split("gpus=")[1].split()[0].split(",")) == 2  # the updated request


def test_jobs_run_one_at_a_time_in_priority_then_submit_order(
        controller: ControllerProcess, tmp_path: Path) -> None:
    wd = workdir(tmp_path, nap="import time, sys; time.sleep(float(sys.argv[1]))",
                 hold="import os, time\nwhile not os.path.exists(os.environ['RELEASE']):\n"
                 "    time.sleep(0.1)\n")
    release = tmp_path / "release"
    blocker = controller.submit("--gpus", "4", "--env", f"RELEASE={release}", "--",
                                PY, "hold.py", cwd=wd)
    controller.wait_state(blocker, {"RUNNING"})
    a = controller.submit("--gpus", "3", "--name", "a", "--", PY, "nap.py", "1", cwd=wd)
    b = controller.submit("--gpus", "3", "--name", "b", "--", PY, "nap.py", "1", cwd=wd)
    c = controller.submit("--gpus", "3", "--name", "c", "--priority", "5", "--",
                          PY, "nap.py", "1", cwd=wd)
    release.touch()
    jobs = {j: controller.wait_done(j) for j in (blocker, a, b, c)}
    assert all(j["state"] == "SUCCEEDED" for j in jobs.values())
    starts = sorted((jobs[j]["started_at"], j) for j in (a, b, c))
    assert [j for _, j in starts] == [c, a, b]
    windows = sorted((datetime.fromisoformat(j["started_at"]), datetime.fromisoformat(
        j["ended_at"])) for j in jobs.values())
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, "two 3-GPU jobs overlapped on 4 GPUs"


LONG = """
import os, signal, sys, time
if len(sys.argv) > 1 and sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
print(f"pid={os.getpid()}", flush=True)
time.sleep(600)
"""


def _pid_from_log(controller: ControllerProcess, job_id: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = controller.cli("logs", str(job_id)).stdout
        if "pid=" in out:
            return int(out.split("pid=")[1].split()[0])
        time.sleep(0.2)
    raise AssertionError("job never printed its pid")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purposes
        return f.read().split(")")[-1].split()[0] != "Z"


def test_cancel_pending_and_running_jobs(controller: ControllerProcess, tmp_path: Path) -> None:
    wd = workdir(tmp_path, long=LONG)
    running = controller.submit("--gpus", "4", "--", PY, "long.py", "stubborn", cwd=wd)
    pending = controller.submit("--gpus", "1", "--", PY, "long.py", cwd=wd)
    controller.wait_state(running, {"RUNNING"})
    pid = _pid_from_log(controller, running)
    assert _alive(pid)
    r = controller.cli("cancel", str(pending))
    assert r.returncode == 0 and "cancelled" in r.stdout
    assert controller.show(pending)["state"] == "CANCELLED"
    assert controller.cli("cancel", str(running)).returncode == 0
    job = controller.wait_done(running, timeout=60)  # SIGTERM is ignored: SIGKILL after 2s
    assert job["state"] == "CANCELLED", (job["reason"], job["history"])
    assert not _alive(pid)
    assert "ignoring SIGTERM" in controller.cli("logs", str(running)).stdout
    again = controller.cli("cancel", str(running))
    assert again.returncode == 1 and "already ended" in again.stderr


def test_a_cancel_racing_the_jobs_own_end_keeps_its_outcome(controller: ControllerProcess,
                                                              tmp_path: Path) -> None:
    """Jobs cancelled the moment their process has exited by itself, before the controller has
    collected them: they succeeded, so they stay SUCCEEDED and `wait` says 0 (#17)."""
    pidfiles = [tmp_path / f"{i}.pid" for i in range(6)]
    jobs = [controller.submit("--", PY, "-c",
                              f"import os; open({str(p)!r}, 'w').write(str(os.getpid()))")
            for p in pidfiles]

    def cancel_once_exited(job_id: int, pidfile: Path) -> None:
        deadline = time.monotonic() + 90
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline, f"job {job_id} never ran"
            time.sleep(0.005)
        pid = int(pidfile.read_text())
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.002)
        controller.api("POST", f"/v1/jobs/{job_id}/cancel")  # 200, or 409 if already collected

    threads = [threading.Thread(target=cancel_once_exited, args=jp)
               for jp in zip(jobs, pidfiles, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job_id in jobs:
        done = controller.wait_done(job_id)
        assert done["state"] == "SUCCEEDED", (done["reason"], done["exit_code"], done["history"])
        assert controller.cli("wait", str(job_id)).returncode == 0


RUNNER_PID = "echo runner=$(cut -d' ' -f4 /proc/$PPID/stat)"
"""The job's parent is the launch shim; the shim's parent is the rank's runner process."""


def test_jobs_one_after_another_reuse_a_warm_runner(controller: ControllerProcess) -> None:
    """#33 item 3: a node's second job starts in the runner process its first one used (a
    pooled Ray worker), not in a new one (0.5 s and half a CPU-second per job before)."""
    runners = []
    for _ in range(2):
        job_id = controller.submit("--gpus", "1", "--", "sh", "-c", RUNNER_PID)
        assert controller.wait_done(job_id)["state"] == "SUCCEEDED"
        runners.append(controller.cli("logs", str(job_id)).stdout.split("runner=")[1].split()[0])
    assert runners[0] == runners[1], runners
    assert Path(f"/proc/{runners[0]}").exists()  # kept warm for the next


def test_time_limit_ends_as_timeout(controller: ControllerProcess, tmp_path: Path) -> None:
    wd = workdir(tmp_path, long=LONG)
    job_id = controller.submit("--time-limit", "2s", "--", PY, "long.py", cwd=wd)
    pid = _pid_from_log(controller, job_id)
    job = controller.wait_done(job_id, timeout=60)
    assert job["state"] == "TIMEOUT" and job["time_limit_s"] == 2
    assert not _alive(pid)


def test_logs_follow_streams_while_the_job_runs(controller: ControllerProcess, tmp_path: Path
        ) -> None:
    wd = workdir(tmp_path, tick="import time\nfor i in range(8):\n"
                 "    print(f'tick {i}', flush=True)\n    time.sleep(0.5)\n")
    job_id = controller.submit("--", PY, "tick.py", cwd=wd)
    follow = subprocess.Popen([*clusterctl_argv(), "logs", "--follow", str(job_id)],
                              env=controller.env, stdout=subprocess.PIPE, text=True)
    assert follow.stdout is not None
    first = follow.stdout.readline()
    assert first.strip() == "tick 0"
    assert controller.show(job_id)["state"] in ("RUNNING", "STARTING")
    rest = follow.stdout.read()  # communicate() would skip what readline() buffered
    assert follow.wait(timeout=60) == 0
    assert [line for line in (first + rest).splitlines()] == [f"tick {i}" for i in range(8)]
    assert controller.show(job_id)["state"] == "SUCCEEDED"


BAD_SUBMITS = [
    ["--gpus", "0"], ["--gpus", "-1"], ["--gpus", "1.5"], ["--gpus", "abc"],
    ["--gpus", "100000"], ["--gpus", "5"], ["--nodes", "0"], ["--nodes", "2"],
    ["--time-limit", "0"], ["--time-limit", "-5m"], ["--time-limit", "abc"],
    ["--time-limit", "1:99:00"], ["--env", "NOEQUALS"],
]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(controller: ControllerProcess) -> None:
    before = len(controller.json("jobs", "--all"))
    for args in BAD_SUBMITS:
        r = controller.cli("submit", *args, "--", "true")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
        field = args[0]
        assert field in lines[0], (args, lines[0])
    r = controller.cli("submit", "--gpus", "1", "--")
    assert r.returncode == 2 and "COMMAND" in r.stderr
    for bad_id in ("1 OR 1=1", "../x", ""):
        for cmd in ("show", "cancel", "logs", "wait"):
            r = controller.cli(cmd, bad_id)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (cmd, bad_id)
    assert len(controller.json("jobs", "--all")) == before
    missing = controller.cli("show", "424242")
    assert missing.returncode == 1 and "no such job" in missing.stderr


def test_tokens_and_ownership(controller: ControllerProcess, tmp_path: Path) -> None:
    bob = json.loads(controller.cli("admin", "user", "add", "bob", "--team", "nlp",
                                    "--json").stdout)
    carol = controller.cli("admin", "user", "add", "carol", "--team", "nlp").stdout.strip()
    wrong = controller.cli("jobs", token="cct_not-a-real-token")
    assert wrong.returncode == 1 and "not authorized" in wrong.stderr
    job_id = int(controller.cli("submit", "--", PY, "-c", "import time; time.sleep(3600)",
                                token=bob["token"]).stdout)
    assert controller.show(job_id)["user"] == "bob" and controller.show(job_id)["team"] == "nlp"
    refused = controller.cli("cancel", str(job_id), token=carol)
    assert refused.returncode == 1 and "belongs to bob" in refused.stderr
    assert controller.show(job_id)["state"] in ("PENDING", "STARTING", "RUNNING")
    not_admin = controller.cli("admin", "user", "add", "dave", "--team", "x", token=carol)
    assert not_admin.returncode == 1 and "admin" in not_admin.stderr
    # Others see bob's job in the queue, not what it runs, its details or its log (#16).
    seen = {j["id"]: j for j in json.loads(controller.cli("jobs", "--json", token=carol).stdout)}
    assert seen[job_id]["user"] == "bob" and seen[job_id]["command"] == []
    for args in (["show", str(job_id)], ["logs", str(job_id)]):
        r = controller.cli(*args, token=carol)
        assert r.returncode == 1 and "belongs to bob" in r.stderr, (args, r.stderr)
    assert controller.show(job_id)["command"][0] == PY  # bob's and the admins' to see
    mine = json.loads(controller.cli("show", str(job_id), "--json", token=bob["token"]).stdout)
    assert mine["command"][0] == PY
    # Another team's quota and cost, or a priority above the users' limit, need an admin.
    before = len(controller.json("jobs", "--all"))
    r = controller.cli("submit", "--team", "vision", "--", "true", token=carol)
    assert r.returncode == 2 and r.stderr.startswith("error: --team:"), r.stderr
    r = controller.cli("submit", "--priority", "1000", "--", "true", token=carol)
    assert r.returncode == 2 and r.stderr.startswith("error: --priority:"), r.stderr
    assert len(controller.json("jobs", "--all")) == before  # nothing written
    lower = controller.cli("submit", "--priority", "-5", "--", "true", token=carol)
    assert lower.returncode == 0, lower.stderr
    boosted = controller.cli("submit", "--priority", "1000", "--team", "vision", "--", "true")
    assert boosted.returncode == 0, boosted.stderr  # an admin may
    # A user of several teams submits to any of them (the first is the default).
    set_ = controller.cli("admin", "user", "set", "carol", "--team", "nlp", "--team", "vision")
    assert set_.stdout.strip() == "carol: teams nlp, vision", set_.stderr
    both = controller.cli("submit", "--team", "vision", "--json", "--", "true", token=carol)
    assert both.returncode == 0 and json.loads(both.stdout)["team"] == "vision", both.stderr
    assert json.loads(controller.cli("submit", "--json", "--", "true",
                                     token=carol).stdout)["team"] == "nlp"
    dana = controller.json("admin", "user", "add", "dana", "--team", "a", "--team", "b")
    assert dana["teams"] == ["a", "b"] and dana["team"] == "a"
    assert httpx.get(f"http://127.0.0.1:{controller.port}/openapi.json").status_code == 404
    # whoami, and a token rotated by an admin: the old one stops working at once
    assert controller.cli("whoami", token=carol).stdout.strip() == "carol (teams nlp, vision)"
    assert controller.cli("admin", "user", "token", "carol", "--rotate",
                          token=carol).returncode == 1  # not an admin
    no_flag = controller.cli("admin", "user", "token", "carol")
    assert no_flag.returncode == 2 and "--rotate" in no_flag.stderr
    fresh = controller.cli("admin", "user", "token", "carol", "--rotate").stdout.strip()
    assert controller.cli("whoami", token=carol).returncode == 1
    assert controller.cli("whoami", token=fresh).stdout.strip() == "carol (teams nlp, vision)"
    assert controller.cli("cancel", str(job_id), token=bob["token"]).returncode == 0
    assert controller.wait_done(job_id)["state"] == "CANCELLED"


def test_nodes_shows_gpus_and_holders(controller: ControllerProcess, tmp_path: Path) -> None:
    wd = workdir(tmp_path, long=LONG)
    job_id = controller.submit("--gpus", "3", "--", PY, "long.py", cwd=wd)
    controller.wait_state(job_id, {"RUNNING"})
    (node,) = controller.json("nodes")
    assert node["name"] == "node-a" and node["gpus"] == 4 and node["gpu_model"] == "simulated"
    assert node["free_gpus"] == 1
    assert sum(1 for g in node["gpu_jobs"] if g["job_id"] == job_id) == 3
    assert "node-a" in controller.cli("nodes").stdout


def test_removed_users_expired_tokens_and_the_audit_trail(controller: ControllerProcess,
                                                          tmp_path: Path) -> None:
    """#16: a removed user is refused at once, their queued jobs cancelled and running ones
    left to finish (or cancelled with --cancel-running); a token past its expiry is refused,
    and one close to it is warned about; every admin action is in `admin audit`."""
    bob = controller.json("admin", "user", "add", "bert", "--team", "nlp")["token"]
    runs = controller.submit("--gpus", "4", "--", PY, "-c", "import time; time.sleep(60)")
    controller.wait_state(runs, {"RUNNING"})
    mine = [int(controller.cli("submit", "--gpus", "4", "--", PY, "-c",
                               "import time; time.sleep(60)", token=bob).stdout)
            for _ in range(2)]
    controller.cli("cancel", str(runs))
    controller.wait_state(mine[0], {"RUNNING"})  # the first runs, the second waits
    removed = controller.json("admin", "user", "remove", "bert")
    assert removed["cancelled"] == [mine[1]] and removed["running"] == [mine[0]]
    refused = controller.cli("jobs", token=bob)
    assert refused.returncode == 1 and "not authorized" in refused.stderr
    assert controller.show(mine[1])["state"] == "CANCELLED"
    assert controller.show(mine[0])["state"] == "RUNNING"  # it finishes, or an admin cancels
    assert "bert" not in [u["name"] for u in controller.json("admin", "user", "list")]

    short = controller.json("admin", "user", "add", "erin", "--team", "nlp",
                            "--expires", "2s")["token"]
    soon = controller.json("admin", "user", "add", "finn", "--team", "nlp",
                           "--expires", "3d")["token"]
    warned = controller.cli("whoami", token=soon)
    assert warned.returncode == 0 and "your token expires in 2 day(s)" in warned.stderr
    time.sleep(2.5)  # the expiry is wall-clock time by definition
    expired = controller.cli("whoami", token=short)
    assert expired.returncode == 1 and "token expired on" in expired.stderr
    assert controller.cli("cancel", str(mine[0])).returncode == 0

    trail = controller.json("admin", "audit")
    actions = [(e["action"], e["target"]) for e in trail]
    assert ("user.add", "bert") in actions and ("user.remove", "bert") in actions
    assert ("user.add", "erin") in actions and ("user.add", "finn") in actions
    assert all(e["actor"] == controller.show(runs)["user"] for e in trail)
    assert controller.cli("admin", "audit", token=soon).returncode == 1  # admins only
