"""The Ansible deployment: lint and syntax, and the playbook applied for real to this machine
(``ansible_connection=local``, head and worker at once, the local PostgreSQL). This machine has
no systemd, so the playbook writes the units without starting them (``common_manage_services:
false``); the test then starts the commands the units hold, as the units would (same user,
environment and arguments), submits a job through the CLI, and checks that a second run of
the playbook changes nothing."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ports import free_port

from clusterctl.executor.local_ray import stop_process
from clusterctl.scheduler.quotas import parse_quotas

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else name


def test_role_pins_the_release_this_repository_builds() -> None:
    defaults = yaml.safe_load((ANSIBLE / "roles/common/defaults/main.yml").read_text())
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert defaults["common_version"] == version.group(1)


@pytest.mark.slow
def test_ansible_lint_production_profile_and_syntax() -> None:
    lint = subprocess.run([tool("ansible-lint"), "--offline", "--profile", "production"],
                          cwd=ANSIBLE, capture_output=True, text=True, timeout=600)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert not (ANSIBLE / ".ansible-lint").exists()  # no skip list
    syntax = subprocess.run(
        [tool("ansible-playbook"), "-i", "inventory.example/", "site.yml", "--syntax-check"],
        cwd=ANSIBLE, capture_output=True, text=True, timeout=300)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_example_group_vars_name_every_role_variable() -> None:
    documented = (ANSIBLE / "inventory.example/group_vars/all/main.yml").read_text()
    for defaults in ANSIBLE.glob("roles/*/defaults/main.yml"):
        for name in yaml.safe_load(defaults.read_text()):
            assert re.search(rf"^#? ?{name}:", documented, re.M), f"{name} is not in the example"


# -- the playbook applied to this machine ---------------------------------------------------

@dataclass
class Unit:
    user: str
    env: dict[str, str]
    argv: list[str]
    caps: list[str]
    """AmbientCapabilities=, as systemd grants them to the unit's account."""


def read_unit(path: Path) -> Unit:
    """What systemd would run: User=, Environment=, EnvironmentFile= and ExecStart=."""
    user, env, argv, caps = "root", {}, [], []
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "User":
            user = value
        elif key == "AmbientCapabilities":
            caps = value.split()
        elif key == "Environment":
            k, _, v = value.partition("=")
            env[k] = v
        elif key == "EnvironmentFile":
            for entry in Path(value).read_text().splitlines():
                if entry and not entry.startswith("#"):
                    k, _, v = entry.partition("=")
                    env[k] = shlex.split(v)[0] if v else ""
        elif key == "ExecStart":
            argv = shlex.split(value)
    return Unit(user, env, argv, caps)


def start_unit(unit: Unit, log: Path) -> subprocess.Popen[bytes]:
    """As systemd would: the account, its groups and the ambient capabilities (setpriv does
    what systemd does for AmbientCapabilities=)."""
    caps = ",".join("+" + c.removeprefix("CAP_").lower() for c in unit.caps)
    argv = ["setpriv", f"--reuid={unit.user}", f"--regid={unit.user}", "--init-groups",
            *([f"--inh-caps={caps}", f"--ambient-caps={caps}"] if caps else []),
            "--", *unit.argv]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **unit.env}
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd="/")


def wait_http(url: str, what: str, log: Path, timeout: float = 120,
              verify: str | bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not answer on {url}:\n{log.read_text()[-3000:]}")


def playbook(inventory: Path, log: Path) -> str:
    run = subprocess.run(
        [tool("ansible-playbook"), "-i", str(inventory), "site.yml"], cwd=ANSIBLE,
        capture_output=True, text=True, timeout=1200,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
             "PATH": f"{BIN}:{os.environ['PATH']}"})
    log.write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    return run.stdout


def recap(output: str) -> dict[str, int]:
    line = next(ln for ln in output.splitlines() if ln.startswith("localnode") and "ok=" in ln)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.fixture
def base() -> Iterator[Path]:
    """World-traversable (the service account reads its venv and settings here), and short:
    Ray's socket paths live under it."""
    path = Path(tempfile.mkdtemp(prefix="ccd-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def drop_on_the_heads_postgresql(db: str) -> None:
    """Drop what an earlier run left on the PostgreSQL the playbook configures (the system's
    cluster on this machine, as its superuser over the local socket, as the head role does),
    which need not be the server the other tests use (scripts/test.sh may run one of its
    own): else a second run finds the first one's users there."""
    if shutil.which("psql") is None:
        return  # not installed yet: the playbook installs it, with nothing left in it
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-qc",
                    f"DROP DATABASE IF EXISTS {db}"], check=False, capture_output=True)


@pytest.mark.postgres
@pytest.mark.ray
@pytest.mark.timeout(1200)  # two playbook runs, the first installing Ray and all into a venv
def test_playbook_deploys_this_machine_and_a_second_run_changes_nothing(
        base: Path, tmp_path: Path) -> None:
    from conftest import pg_server

    pg_server()  # the playbook's own PostgreSQL, but a run without one skips (fails under CI)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("applying the playbook to this machine needs root and apt")
    db = "clusterctl_deploy_test"
    drop_on_the_heads_postgresql(db)

    ports = {name: free_port() for name in ("api", "ray", "agent", "metrics", "client",
                                            "controller_metrics")}
    host: dict[str, Any] = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "common_private_address": "127.0.0.1",
        "common_cluster_subnet": "127.0.0.0/8",
        "common_node_name": "deploy-node",
        "common_simulate_gpus": 2,
        "common_manage_services": False,
        "common_firewall": False,
        "common_home": str(base / "home"),
        "common_venv": str(base / "opt" / "venv"),
        "common_config_dir": str(base / "etc"),
        "common_wheel_dir": str(tmp_path / "wheels"),
        "common_api_port": ports["api"],
        "common_controller_metrics_port": ports["controller_metrics"],
        "common_ray_port": ports["ray"],
        "common_agent_port": ports["agent"],
        "common_ray_metrics_port": ports["metrics"],
        "head_ray_client_port": ports["client"],
        "head_db_name": db,
        "head_db_password": "deploy-test-password",
        "head_quotas": {"ml": 2, "cv": {"H100": 1, "A100": 2}},
        "monitoring_grafana_dir": str(base / "grafana"),
        "monitoring_dashboards_dir": str(base / "grafana-dashboards"),
    }
    (base / "grafana" / "provisioning" / "datasources").mkdir(parents=True)
    (base / "grafana" / "provisioning" / "dashboards").mkdir(parents=True)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "head": {"hosts": {"localnode": host}},
        "gpu_workers": {"hosts": {"localnode": None}}}}}))

    first = playbook(inventory, tmp_path / "first.log")
    assert recap(first)["failed"] == 0

    units = Path("/etc/systemd/system")
    etc = base / "etc"
    # Every secret on the machine, its mode and owner: none is the job accounts' to read.
    for name, mode, owner in (("ray-token", 0o600, "clusterctl"),
                              ("node-token", 0o600, "clusterctl"),
                              ("controller.env", 0o640, "root"),
                              ("ca.key", 0o600, "root"),
                              ("controller.key", 0o600, "clusterctl"),
                              ("ca.pem", 0o644, "root")):
        st = (etc / name).stat()
        assert (st.st_mode & 0o777, pwd.getpwuid(st.st_uid).pw_name) == (mode, owner), name
    assert etc.stat().st_mode & 0o007 == 0  # /etc/clusterctl: root and the service group
    for unit in ("clusterctl-ray-head.service", "clusterctl-controller.service"):
        assert Path(f"/etc/systemd/system/{unit}").stat().st_mode & 0o022 == 0
    assert "deploy-test-password" not in first  # no_log keeps it out of the output
    env_file = (etc / "controller.env").read_text()
    quotas = env_file.split("CLUSTERCTL_QUOTAS='")[1].split("'")[0]
    assert parse_quotas(quotas.split(",")) == ({"ml": 2.0}, {"cv": {"H100": 1.0, "A100": 2.0}})
    prom = yaml.safe_load(Path("/etc/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["clusterctl-agent"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{ports['agent']}"]
    assert jobs["clusterctl-controller"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{ports['controller_metrics']}"]
    assert sorted(p.name for p in (base / "grafana-dashboards").iterdir()) == sorted(
        p.name for p in (ANSIBLE / "roles/monitoring/files/dashboards").iterdir())

    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    person = f"ccdeploy{os.getpid() % 10000}"
    subprocess.run(["useradd", "--no-create-home", person], check=True)
    head = read_unit(units / "clusterctl-ray-head.service")
    try:
        procs.append(start_unit(head, logs / "ray.log"))
        controller = read_unit(units / "clusterctl-controller.service")
        procs.append(start_unit(controller, logs / "controller.log"))
        api = f"https://127.0.0.1:{ports['api']}"  # TLS, with the CA the playbook made
        wait_http(f"{api}/healthz", "the controller", logs / "controller.log", timeout=180,
                  verify=str(etc / "ca.pem"))
        agent = read_unit(units / "clusterctl-agent.service")
        procs.append(start_unit(agent, logs / "agent.log"))
        wait_http(f"http://127.0.0.1:{ports['agent']}/metrics", "the agent", logs / "agent.log")
        # Every target Prometheus is told to scrape answers: the controller, the agent, Ray.
        wait_http(f"http://127.0.0.1:{ports['metrics']}/metrics", "Ray's metrics",
                  logs / "ray.log")
        metrics = f"http://127.0.0.1:{ports['controller_metrics']}/metrics"
        assert "clusterctl_jobs" in httpx.get(metrics, timeout=5).text

        # The admin token `up` wrote for the service account, as an admin would use it.
        config = base / "home" / ".config" / "clusterctl" / "config.toml"
        env = {**os.environ, "CLUSTERCTL_CONFIG": str(config)}
        work = tmp_path / "work"
        work.mkdir()
        (work / "job.py").write_text(
            "import os, pwd\nprint('gpus', os.environ['CUDA_VISIBLE_DEVICES'])\n"
            "print('user', pwd.getpwuid(os.getuid()).pw_name)\n"
            "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
            "others = [p for p in os.listdir('/proc') if p.isdigit()\n"
            "          and os.stat('/proc/' + p).st_uid != os.getuid()]\n"
            "print('others', len(others))\n")
        work.chmod(0o755)

        def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run([tool("clusterctl"), *args], cwd=work,
                                  env={**env, "CLUSTERCTL_TOKEN": token} if token else env,
                                  capture_output=True, text=True, timeout=120)

        # A person with a Unix account on the node: their job runs as them, without the
        # capabilities the Ray service holds.
        added = cli("admin", "user", "add", person, "--team", "ml")
        assert added.returncode == 0, added.stderr
        sub = cli("submit", "--gpus", "1", "--json", "--", "python3", "job.py",
                  token=added.stdout.strip())
        assert sub.returncode == 0, sub.stderr + (logs / "controller.log").read_text()[-3000:]
        job = json.loads(sub.stdout)["id"]
        waited = cli("wait", str(job))
        out = cli("logs", str(job)).stdout
        assert waited.returncode == 0, waited.stdout + waited.stderr + out
        assert "gpus " in out and f"user {person}\n0000000000000000" in out, out
        # /proc is mounted hidepid=invisible: the job sees no process but its own.
        assert "others 0\n" in out, out
        nodes = json.loads(cli("nodes", "--json").stdout)
        assert [n["name"] for n in nodes] == ["deploy-node"]
        deadline = time.monotonic() + 60  # the agent ships its samples with its node token
        while time.monotonic() < deadline:
            gpus = json.loads(cli("nodes", "--json").stdout)[0]["gpu_jobs"]
            if any(g.get("utilization") is not None for g in gpus):
                break
            time.sleep(1)
        else:
            raise AssertionError("no samples from the agent:\n"
                                 + (logs / "agent.log").read_text()[-3000:])
        # The head has the plots extra (matplotlib), so an admin there can draw charts.
        chart = cli("report", "utilization", "--plot", str(work / "util.png"))
        assert chart.returncode == 0 and (work / "util.png").stat().st_size > 0, chart.stderr
    finally:
        for p in reversed(procs):
            stop_process(p, 30)
        subprocess.run(["userdel", person], check=False)

    second = playbook(inventory, tmp_path / "second.log")
    counts = recap(second)
    assert counts["changed"] == 0, second[-6000:]
    assert counts["failed"] == 0


@pytest.mark.slow
def test_a_gpu_host_without_the_driver_stops_the_play_naming_it(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    host = {"ansible_connection": "local", "ansible_become": False,
            "ansible_python_interpreter": sys.executable, "common_private_address": "127.0.0.1",
            "head_db_password": "unused"}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "head": {"hosts": {"gpu-box-7": host}}, "gpu_workers": {"hosts": {"gpu-box-7": None}}}}}))
    run = subprocess.run(
        [tool("ansible-playbook"), "-i", str(inventory), "site.yml",
         "--start-at-task", "Check the NVIDIA driver"], cwd=ANSIBLE, capture_output=True,
        text=True, timeout=300, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode != 0
    assert "gpu-box-7: nvidia-smi is missing or fails" in run.stdout, run.stdout[-3000:]
    assert "set common_gpu_host false for a CPU-only host" in run.stdout
    assert "Create the service account" not in run.stdout  # it stopped there
