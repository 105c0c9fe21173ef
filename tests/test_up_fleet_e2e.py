"""`clusterctl up --simulate-gpus 1x2:H100-80GB,1x2:RTX-4090` (#18, item 7): a mixed fleet
on one machine, a Ray node and a simulated agent per machine, each reporting its model and
memory; typed, memory-bound and impossible requests behave as on real hardware; an orderly
stop leaves nothing running."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from harness import ControllerProcess
from ports import free_port

from clusterctl.executor.local_ray import process_alive

pytestmark = pytest.mark.ray


def two_free_ports() -> int:
    """A port whose next one is free too (the fleet's second agent takes it)."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def test_up_simulates_a_mixed_fleet_and_stops_all_of_it(tmp_path: Path) -> None:
    c = ControllerProcess(tmp_path / "ctl", "unused", tmp_path / "unused-token")
    c.up_args = ["up", "--simulate-gpus", "1x2:H100-80GB,1x2:RTX-4090", "--port", str(c.port),
                 "--data-dir", str(c.data_dir), "--kill-grace", "2s", "--agent-port",
                 str(two_free_ports()), "--agent-interval", "1s"]
    c.start(timeout=180)
    host = socket.gethostname()
    try:
        state = json.loads((c.data_dir / "up-state.json").read_text())
        pids = [state["ray"]["pid"], *state["workers"], state["agent_pid"], *state["agents"]]
        assert len(pids) == 4 and all(process_alive(p) for p in pids)
        deadline = time.monotonic() + 60  # both agents report their model and memory
        while True:
            nodes = {n["name"]: n for n in c.json("nodes")}
            models = {name: {g.get("model") for g in n["gpu_jobs"]} for name, n in nodes.items()}
            if models == {f"{host}-h100-80gb-0": {"H100-80GB"},
                          f"{host}-rtx-4090-0": {"RTX-4090"}}:
                break
            assert time.monotonic() < deadline, models
            time.sleep(0.5)
        title = c.cli("nodes").stdout.splitlines()[0]
        assert "4 GPU(s), 4 free: 2 H100-80GB (2 free), 2 RTX-4090 (2 free)" in title, title
        memory = {name: {g["memory_total_bytes"] for g in n["gpu_jobs"]}
                  for name, n in nodes.items()}
        assert memory == {f"{host}-h100-80gb-0": {80 << 30}, f"{host}-rtx-4090-0": {24 << 30}}

        work = tmp_path / "w"
        work.mkdir()
        small = c.submit("--gpus", "4090:1", "--", "true", cwd=work)
        big = c.submit("--gpu-mem", "40G", "--", "true", cwd=work)
        for job_id, node in ((small, "rtx-4090"), (big, "h100-80gb")):
            done = c.wait_done(job_id)
            assert done["state"] == "SUCCEEDED", done
            assert done["node_names"] == [f"{host}-{node}-0"], done
        refused = c.cli("submit", "--gpus", "H100:3", "--", "true", cwd=work)
        assert refused.returncode == 2 and "here: H100-80GB (2 per node, 1 node), RTX-4090 " \
            "(2 per node, 1 node)" in refused.stderr, refused.stderr
    finally:
        c.stop()
    assert not (c.data_dir / "up-state.json").exists()
    deadline = time.monotonic() + 30
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not any(process_alive(p) for p in pids)


def test_up_simulates_a_machine_of_two_models(tmp_path: Path) -> None:
    """``H100-80GB:1+RTX-4090:1``: one Ray node of 2 GPUs whose agent reports each GPU's
    model; a job asking for the 4090 gets that device."""
    c = ControllerProcess(tmp_path / "ctl", "unused", tmp_path / "unused-token")
    c.up_args = ["up", "--simulate-gpus", "H100-80GB:1+RTX-4090:1", "--port", str(c.port),
                 "--data-dir", str(c.data_dir), "--kill-grace", "2s", "--agent-port",
                 str(free_port()), "--agent-interval", "1s"]
    c.start(timeout=180)
    try:
        deadline = time.monotonic() + 60
        while "2 GPU(s), 2 free: 1 H100-80GB (1 free), 1 RTX-4090 (1 free)" not in (
                title := " ".join(c.cli("nodes").stdout.split())):
            assert time.monotonic() < deadline, title
            time.sleep(0.5)
        work = tmp_path / "w"
        work.mkdir()
        job = c.submit("--gpus", "4090:1", "--", "sh", "-c", "echo dev=$CUDA_VISIBLE_DEVICES",
                       cwd=work)
        assert c.wait_done(job)["state"] == "SUCCEEDED"
        assert c.cli("logs", str(job)).stdout.strip() == "dev=1"
    finally:
        c.stop()


def test_a_bad_fleet_is_one_line_and_exit_2(tmp_path: Path) -> None:
    c = ControllerProcess(tmp_path / "ctl", "unused", tmp_path / "unused-token")
    for value in ("1x2:", "9x1:A100", "two", "H100:0+L4:1", "H100+L4"):
        r = c.cli("up", "--simulate-gpus", value, "--data-dir", str(c.data_dir))
        assert r.returncode == 2 and r.stderr.startswith("error: --simulate-gpus:"), r.stderr
    assert not (c.data_dir / "up-state.json").exists()
