"""Jobs run as their submitter's Unix account (#16): on a real Ray whose runners may switch
accounts (root, as CI runs), with Unix users made by ``useradd`` for the test and removed
after it. What a job of one user can and cannot reach is tried from inside the job itself,
with the shell alone (the test's Python lives under root's home, out of the job's reach)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from harness import ControllerProcess, clusterctl_argv

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs root "
                                "(CI runs the suite as root)")


def _useradd(name: str) -> None:
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)


def _userdel(name: str) -> None:
    subprocess.run(["userdel", "--remove", name], capture_output=True)


class Cluster:
    def __init__(self, ctl: ControllerProcess, alice: str, bob: str, spare: str) -> None:
        self.ctl, self.alice, self.bob, self.spare = ctl, alice, bob, spare
        self.tokens: dict[str, str] = {}

    def add(self, name: str, *extra: str) -> None:
        r = self.ctl.cli("admin", "user", "add", name, "--team", "t", *extra)
        assert r.returncode == 0, r.stderr
        self.tokens[name] = r.stdout.strip()

    def submit(self, who: str, script: str, where: Path) -> int:
        where.mkdir(parents=True, exist_ok=True)
        r = self.ctl.cli("submit", "--gpus", "1", "--", "sh", "-c", script,
                         token=self.tokens[who], cwd=where)
        assert r.returncode == 0, r.stderr
        return int(r.stdout.strip())

    def log(self, job_id: int) -> str:
        return self.ctl.cli("logs", str(job_id)).stdout


@pytest.fixture(scope="module")
def cluster(ray_head: LocalRay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tag = secrets.token_hex(3)
    alice, bob, spare = f"cca{tag}", f"ccb{tag}", f"ccj{tag}"
    for name in (alice, bob, spare):
        _useradd(name)
    ctl = ControllerProcess(tmp_path_factory.mktemp("accounts") / "ctl", ray_head.address,
                     ray_head.token_file, run_as_submitter=True)
    try:
        ctl.start()
        c = Cluster(ctl, alice, bob, spare)
        c.add(alice)
        c.add(bob)
        yield c
    finally:
        ctl.stop()
        for name in (alice, bob, spare):
            _userdel(name)


def test_a_job_runs_as_its_submitter_in_a_directory_of_its_own(
        cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "ship").mkdir()
    (tmp_path / "ship" / "data.txt").write_text("shipped\n")
    job = cluster.submit(cluster.alice, (
        "echo user=$(id -un) uid=$(id -u); echo home=$HOME; echo logname=$LOGNAME; "
        "echo owner=$(stat -c %U .) file=$(stat -c %U data.txt) $(cat data.txt); "
        "grep NoNewPrivs /proc/self/status; echo out=$(readlink /proc/self/fd/1); "
        "echo caps=$(grep CapEff /proc/self/status | cut -f2)"), tmp_path / "ship")
    r = cluster.ctl.cli("wait", str(job))
    out = cluster.log(job)
    assert r.returncode == 0, out
    a = cluster.alice
    assert f"user={a} " in out and "uid=0" not in out
    assert f"home=/home/{a}\n" in out and f"logname={a}\n" in out
    # Its working directory and the files shipped with it are its own (unpacked as alice).
    assert f"owner={a} file={a} shipped" in out
    assert "NoNewPrivs:\t1" in out and "caps=0000000000000000" in out
    # It writes to a pipe the runner reads: it holds no descriptor of its log file.
    assert "out=pipe:" in out
    assert cluster.ctl.show(job)["state"] == "SUCCEEDED"


def test_a_job_reaches_neither_the_controllers_secrets_nor_another_users_job(
        cluster: Cluster, tmp_path: Path) -> None:
    ctl = cluster.ctl
    bobs = cluster.submit(cluster.bob, "echo pid=$$ secret-of-bob; exec sleep 300",
                          tmp_path / "bob")
    ctl.wait_state(bobs, {"RUNNING"})
    pid = ""
    for _ in range(100):
        text = cluster.log(bobs)
        if "pid=" in text:
            pid = text.split("pid=")[1].split()[0]
            break
        subprocess.run(["sleep", "0.1"])
    assert pid, cluster.log(bobs)
    bob_logs = list(Path("/var/spool/clusterctl").glob(f"*/job-{bobs}-a1-r0/output.log"))
    assert bob_logs, "bob's log on the node"
    targets = {
        "database": ctl.db_url.removeprefix("sqlite:///"),
        "config": str(ctl.root / "config.toml"),  # the admin's token
        "ray_token": str(ctl.env["CLUSTERCTL_RAY_TOKEN_FILE"]),
        "controller_log": str(next((ctl.data_dir / "logs").rglob("*.log"), ctl.data_dir)),
        "bob_log": str(bob_logs[0]),
    }
    reads = "; ".join(f"cat {p} >/dev/null 2>&1 && echo {k}=READ || echo {k}=denied"
                      for k, p in targets.items())
    alices = cluster.submit(cluster.alice, (
        f"{reads}; kill -0 {pid} 2>/dev/null && echo signal=SENT || echo signal=denied"),
        tmp_path / "alice")
    assert ctl.cli("wait", str(alices)).returncode == 0, cluster.log(alices)
    out = cluster.log(alices)
    for key in [*targets, "signal"]:
        assert f"{key}=denied" in out, out
    assert ctl.show(bobs)["state"] == "RUNNING"  # untouched
    assert "secret-of-bob" not in out
    ctl.cli("cancel", str(bobs))
    assert ctl.wait_done(bobs)["state"] == "CANCELLED"  # the runner still ends bob's job


def test_an_account_the_node_lacks_fails_the_job_at_start_unless_job_account_is_set(
        cluster: Cluster, tmp_path: Path) -> None:
    ctl = cluster.ctl
    stranger = f"ccx{secrets.token_hex(3)}"  # a clusterctl user with no Unix account
    cluster.add(stranger)
    job = cluster.submit(stranger, "id -un", tmp_path / "s1")
    ended = ctl.wait_done(job)
    assert ended["state"] == "FAILED"
    assert f"no Unix account {stranger}" in (ended.get("reason") or ""), ended
    # An admin maps the user to an account that exists: their next job runs as it.
    r = ctl.cli("admin", "user", "set", stranger, "--unix-user", cluster.alice)
    assert r.returncode == 0, r.stderr
    mapped = cluster.submit(stranger, "id -un", tmp_path / "s2")
    assert ctl.cli("wait", str(mapped)).returncode == 0
    assert cluster.log(mapped).strip() == cluster.alice
    bad = ctl.cli("admin", "user", "set", stranger, "--unix-user", "Not A User")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --unix-user:"), bad.stderr
    # With job_account set, a user without an account runs as that one instead.
    other = f"ccy{secrets.token_hex(3)}"
    cluster.add(other)
    ctl.stop()
    ctl.env["CLUSTERCTL_JOB_ACCOUNT"] = cluster.spare
    try:
        ctl.start()
        fallback = cluster.submit(other, "id -un", tmp_path / "s3")
        assert ctl.cli("wait", str(fallback)).returncode == 0, ctl.show(fallback)
        assert cluster.log(fallback).strip() == cluster.spare
    finally:
        ctl.stop()
        del ctl.env["CLUSTERCTL_JOB_ACCOUNT"]
        ctl.start()


def test_an_interactive_job_s_terminal_is_its_account_s(cluster: Cluster, tmp_path: Path
                                                        ) -> None:
    argv = [*clusterctl_argv(), "run", "--pty", "--", "sh", "-c",
            "echo who=$(id -un) term=$(stat -c %U $(tty)); read line; echo got-$line; exit 5"]
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=60, cwd=str(tmp_path),
                          env={**cluster.ctl.env, "CLUSTERCTL_TOKEN":
                               cluster.tokens[cluster.alice]})
    child.expect(rf"who={cluster.alice} term={cluster.alice}")  # its own terminal, as sshd's
    child.sendline("typed")
    child.expect_exact("got-typed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
