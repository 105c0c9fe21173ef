"""What one user's job can reach on a cluster ``up`` started (#31, items 1 to 3): an admin
starts ``up`` from a shell holding their cloud key, model-hub token and database password; a
person's job, run as their own Unix account (``useradd`` for the test), must find none of
them, must not be able to touch Ray's sockets (renaming the raylet's stopped every start on
the node), and must not read another user's command line through the runner's shim."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest
from harness import ControllerProcess

from clusterctl.executor.local_ray import ray_temp_dir

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs root "
                                 "(CI runs the suite as root)")]


def _processes() -> list[tuple[int, int, str, bytes]]:
    """(pid, uid, command line, environment) of every process this test can read."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        found.append((int(entry), uid, cmdline.decode(errors="replace"), environ))
    return found


def test_a_job_holds_none_of_ups_secrets_nor_rays_files_nor_others_command_lines(
        tmp_path: Path) -> None:
    tag = secrets.token_hex(4)
    given = {"AWS_SECRET_ACCESS_KEY": f"aws-{tag}", "HF_TOKEN": f"hf-{tag}",
             "PGPASSWORD": f"pg-{tag}"}
    person = f"cci{tag[:6]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", person], check=True,
                   capture_output=True)
    c = ControllerProcess(tmp_path / "ctl", "unused", tmp_path / "unused-token",
                   run_as_submitter=True)
    c.env.update(given)
    c.up_args = ["up", "--simulate-gpus", "2", "--no-agent", "--port", str(c.port),
                 "--data-dir", str(c.data_dir), "--kill-grace", "2s"]
    try:
        c.start(timeout=180)
        added = c.cli("admin", "user", "add", person, "--team", "t")
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip()
        ray_dir = ray_temp_dir(c.data_dir)
        work = tmp_path / "work"
        work.mkdir()
        script = (
            "env; echo ---; "
            f"ls {ray_dir} >/dev/null 2>&1 && echo ray-dir=LISTED || echo ray-dir=denied; "
            f"mv {ray_dir}/session_latest/sockets/raylet /tmp/x 2>/dev/null "
            "&& echo ray-socket=MOVED || echo ray-socket=denied; "
            "touch $TMPDIR/mine && echo tmpdir=writable; "
            f"sleep 300 # marker-{tag}")
        job = c.cli("submit", "--gpus", "1", "--json", "--", "sh", "-c", script, cwd=work,
                    token=token)
        assert job.returncode == 0, job.stderr
        job_id = json.loads(job.stdout)["id"]
        c.wait_state(job_id, {"RUNNING"})
        log = ""
        for _ in range(300):
            log = c.cli("logs", str(job_id), token=token).stdout
            if "tmpdir=" in log:
                break
            subprocess.run(["sleep", "0.1"])
        env = dict(line.split("=", 1) for line in log.split("---")[0].splitlines()
                   if "=" in line)
        # Item 1: the job's environment is its own account's and clusterctl's, nothing more.
        for value in given.values():
            assert value not in log, log
        assert env["HOME"] == f"/home/{person}" and env["USER"] == person, env
        assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin", env
        assert not any(k.startswith(("RAY_", "PYTHON", "VIRTUAL_ENV")) for k in env), env
        assert env["TMPDIR"] != "/tmp" and "tmpdir=writable" in log, log
        # Nor do Ray's processes hold them (a job of the admin's own account could read them).
        ray_pid = json.loads((c.data_dir / "up-state.json").read_text())["ray"]["pid"]
        ray_procs = [p for p in _processes() if os.getsid(p[0]) == ray_pid]
        assert len(ray_procs) >= 3, ray_procs  # ray start, GCS, raylet, workers...
        for pid, _uid, cmdline, environ in ray_procs:
            for value in given.values():
                assert value.encode() not in environ, (pid, cmdline)
        # Item 2: Ray's directory (world-writable inside, as Ray makes it) is out of reach.
        assert "ray-dir=denied" in log and "ray-socket=denied" in log, log
        assert (ray_dir / "session_latest" / "sockets" / "raylet").exists()
        assert ray_dir.parent.stat().st_mode & 0o777 == 0o700
        # Item 3: only the job's own processes show its command; the root shim does not.
        showing = [(pid, uid, cmd) for pid, uid, cmd, _env in _processes()
                   if f"marker-{tag}" in cmd]
        owner = int(subprocess.run(["id", "-u", person], capture_output=True,
                                   text=True).stdout)
        assert showing and all(uid == owner for _pid, uid, _cmd in showing), showing
        c.cli("cancel", str(job_id))
        assert c.wait_done(job_id)["state"] == "CANCELLED"
    finally:
        c.stop()
        subprocess.run(["userdel", "--remove", person], capture_output=True)
