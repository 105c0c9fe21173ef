"""The production arrangement on one machine, as docs/admin-guide.md sets it up on several:
PostgreSQL, a Ray head and a Ray worker started with `ray start` (token auth), the controller
with --ray-address and --db, one agent per Ray node (simulated GPUs), then a single-GPU job, a
2-node job, and the utilization and cost reports, all through the real `clusterctl` command."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from harness import Agent, ControllerProcess, log_tail
from ports import free_port

from clusterctl.executor.local_ray import (
    ensure_token,
    ray_command,
    ray_env,
    stop_process,
)

pytestmark = [pytest.mark.ray, pytest.mark.postgres]
PY = sys.executable
NODES = ("prod-head", "prod-worker")


def ray_start(args: list[str], token: Path, log: Path) -> subprocess.Popen[bytes]:
    env = ray_env(token)
    env.pop("RAY_ADDRESS", None)
    with open(log, "ab") as out:
        return subprocess.Popen([*ray_command(), "start", "--block", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def labels(node: str) -> str:
    return json.dumps({"clusterctl-node": node, "clusterctl-gpu-model": "simulated"})


@pytest.fixture
def pg_database() -> Iterator[str]:
    from conftest import fresh_pg_database, pg_server

    yield from fresh_pg_database(pg_server())


def test_production_mode_end_to_end(pg_database: str, tmp_path: Path) -> None:
    token = ensure_token(tmp_path / "ray-token")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    agents: list[Agent] = []
    ctl: ControllerProcess | None = None
    try:
        procs.append(ray_start(
            ["--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
             "--ray-client-server-port", str(free_port()), "--include-dashboard", "false",
             "--disable-usage-stats", "--num-cpus", "1", "--num-gpus", "2",
             "--labels", labels(NODES[0])], token, tmp_path / "ray-head.log"))
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # the worker needs the head's GCS up
        while subprocess.run([*ray_command(), "status", "--address", address],
                             env=ray_env(token), capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, log_tail(tmp_path / "ray-head.log")
            time.sleep(1)
        procs.append(ray_start(
            ["--address", address, "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
             "--num-cpus", "1", "--num-gpus", "2", "--labels", labels(NODES[1])],
            token, tmp_path / "ray-worker.log"))

        ctl = ControllerProcess(tmp_path / "ctl", address, token, db_url=pg_database)
        ctl.start()
        deadline = time.monotonic() + 60
        while sorted(n["name"] for n in ctl.json("nodes")) != sorted(NODES):
            assert time.monotonic() < deadline, ctl.json("nodes")
            time.sleep(1)
        for node in NODES:
            issued = ctl.cli("admin", "node-token", node)
            assert issued.returncode == 0, issued.stderr
            agent = Agent(tmp_path / f"agent-{node}", node, f"http://127.0.0.1:{ctl.port}",
                          issued.stdout.strip(), gpus=2)
            agent.start()
            agents.append(agent)
        bought = (datetime.now(timezone.utc) - timedelta(days=90)).date().isoformat()
        for node in NODES:
            added = ctl.cli("hardware", "add", node, "--gpus", "2", "--gpu-model", "A100",
                            "--price", "60000", "--purchased", bought, "--life", "36mo",
                            "--resale", "0.25", "--monthly-fees", "500")
            assert added.returncode == 0, added.stderr

        wd = tmp_path / "work"
        wd.mkdir()
        (wd / "job.py").write_text(
            "import os, time\n"
            "print(os.environ.get('NODE_RANK', '-'), os.environ['CUDA_VISIBLE_DEVICES'])\n"
            "time.sleep(6)\n")
        one = ctl.submit("--gpus", "1", "--name", "single", "--", PY, "job.py", cwd=wd)
        two = ctl.submit("--nodes", "2", "--gpus", "1", "--name", "pair", "--", PY, "job.py",
                         cwd=wd)
        for job in (one, two):
            assert ctl.wait_done(job)["state"] == "SUCCEEDED", ctl.log_tail()
        pair = ctl.show(two)
        assert sorted(pair["node_names"]) == sorted(NODES)  # one rank on each Ray node
        ranks = {ctl.cli("logs", str(two), "--rank", str(r)).stdout.split()[0] for r in (0, 1)}
        assert ranks == {"0", "1"}

        deadline = time.monotonic() + 60  # the agents' samples of the jobs' GPUs are in
        while True:
            usage = ctl.show(two).get("usage") or {}
            if (usage.get("coverage") or 0) > 0.5:
                break
            assert time.monotonic() < deadline, (usage, agents[0].log_tail())
            time.sleep(1)
        util = ctl.json("report", "utilization", "--since", "1d", "--by", "node")
        rows = {r["key"]: r for r in util["rows"]}
        assert set(NODES) <= set(rows)
        assert all(rows[n]["gpu_hours"] > 0 for n in NODES)  # the pair ran on both
        cost = ctl.json("report", "cost", "--since", "1d", "--by", "job")
        by_job = {r["key"]: r for r in cost["rows"]}
        assert {str(one), str(two)} <= set(by_job)
        for job, gpus in ((one, 1), (two, 2)):  # each GPU it held, for as long as it ran
            shown = ctl.show(job)
            ran_h = (datetime.fromisoformat(shown["ended_at"])
                     - datetime.fromisoformat(shown["started_at"])).total_seconds() / 3600
            assert by_job[str(job)]["gpu_hours"] == pytest.approx(gpus * ran_h, rel=0.2)
        # Seconds-long jobs cost under a cent; the day's capacity cost of the 4 GPUs, used or
        # idle, by hand: (60,000 x 0.75 / (36 x 730.5) + 500 / 730.5) / 2 = $1.1978 per
        # GPU-hour, x 4 GPUs x 24 h = $114.99.
        assert cost["total"]["capacity_cost"] == pytest.approx(114.99, rel=0.02)
    finally:
        for agent in agents:
            agent.stop()
        if ctl is not None:
            ctl.stop()
        for p in reversed(procs):
            stop_process(p, 60)
