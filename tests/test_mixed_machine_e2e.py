"""A machine of two GPU models on a real Ray cluster (#18, item 1): one Ray node of 4 GPUs whose
simulated agent reports 2 H100s and 2 RTX 4090s. Each job gets devices of the model it accepts
(its CUDA_VISIBLE_DEVICES), never two jobs the same device, a typed job waits for its model
while the other model is free, and a controller restarted meanwhile still knows which devices
its running jobs hold."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RAY_TOKEN
from harness import Agent, ControllerProcess

pytestmark = pytest.mark.ray

SHOW = ["sh", "-c", 'echo "devices=$CUDA_VISIBLE_DEVICES"']


@pytest.fixture(scope="module")
def duo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "labels": {"clusterctl-node": "head"}})
    c.add_node(num_cpus=4, num_gpus=4, labels={"clusterctl-node": "duo"})
    try:
        yield c.address
    finally:
        c.shutdown()


def devices(ctl: ControllerProcess, job_id: int) -> str:
    out = ctl.cli("logs", str(job_id)).stdout
    return next(line.split("=", 1)[1] for line in out.splitlines()
                if line.startswith("devices="))


def test_jobs_get_devices_of_the_model_they_accept(duo: str, tmp_path: Path) -> None:
    ctl = ControllerProcess(tmp_path / "ctl", duo, RAY_TOKEN)
    ctl.start()
    agent = Agent(tmp_path / "agent", "duo", f"http://127.0.0.1:{ctl.port}",
                  ctl.node_token("duo"), gpus=4,
                  extra=("--simulate-model", "H100-80GB:2+RTX-4090:2"))
    agent.start()
    work = tmp_path / "w"
    work.mkdir()
    jobs: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while "2 H100-80GB (2 free), 2 RTX-4090 (2 free)" not in (
                title := " ".join(ctl.cli("nodes").stdout.split())):  # wrapped to the table
            assert time.monotonic() < deadline, title
            time.sleep(0.5)

        hold = "echo devices=$CUDA_VISIBLE_DEVICES; sleep 300"
        h100 = ctl.submit("--gpus", "H100:2", "--", "sh", "-c", hold, cwd=work)
        jobs.append(h100)
        ctl.wait_state(h100, {"RUNNING"})
        rtx = ctl.submit("--gpu-type", "4090", "--", *SHOW, cwd=work)
        assert ctl.wait_done(rtx)["state"] == "SUCCEEDED"
        assert devices(ctl, rtx) == "2"
        deadline = time.monotonic() + 30
        while "devices=" not in ctl.cli("logs", str(h100)).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert devices(ctl, h100) == "0,1"
        assert sorted(a["gpu_index"] for a in ctl.show(h100)["allocations"]) == [0, 1]

        waiting = ctl.submit("--gpus", "H100:1", "--", *SHOW, cwd=work)
        jobs.append(waiting)
        deadline = time.monotonic() + 30
        while not (job := ctl.show(waiting)).get("wait_detail"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "PENDING" and job["wait_detail"] == "needs 1 H100; 0 of 2 free"

        refused = ctl.cli("submit", "--gpus", "H100:3", "--", "true", cwd=work)
        assert refused.returncode == 2
        assert "--gpus: no node has 3 H100 GPUs; here: H100-80GB (2 per node, 1 node), " \
               "RTX-4090 (2 per node, 1 node)" in refused.stderr, refused.stderr

        # A restarted controller reads the devices its running job holds from the database:
        # an untyped 2-GPU job takes the two 4090s, not an H100 the running job holds.
        ctl.kill()
        ctl.start()
        assert ctl.show(h100)["state"] == "RUNNING"
        untyped = ctl.submit("--gpus", "2", "--", *SHOW, cwd=work)
        assert ctl.wait_done(untyped)["state"] == "SUCCEEDED"
        assert devices(ctl, untyped) == "2,3"

        assert ctl.cli("cancel", str(h100)).returncode == 0
        assert ctl.wait_done(waiting)["state"] == "SUCCEEDED"
        assert devices(ctl, waiting) == "0"
    finally:
        for job_id in jobs:
            ctl.cli("cancel", str(job_id))
        agent.stop()
        ctl.stop()
