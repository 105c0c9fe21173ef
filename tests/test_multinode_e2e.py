"""A 2-node x 2-GPU job on a three-node Ray cluster on one machine (ray.cluster_utils.Cluster):
a GPU-less head and two workers with 2 simulated GPUs each."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RAY_TOKEN
from harness import ControllerProcess

pytestmark = pytest.mark.ray
PY = sys.executable

RANK = """
import os
keys = ["MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "NNODES", "WORLD_SIZE", "CUDA_VISIBLE_DEVICES"]
print(" ".join(f"{k}={os.environ[k]}" for k in keys), flush=True)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "labels": {"clusterctl-node": "head"}})
    for name in ("gpu-1", "gpu-2"):
        c.add_node(num_cpus=1, num_gpus=2, labels={"clusterctl-node": name,
                                                   "clusterctl-gpu-model": "simulated"})
    try:
        yield c.address, RAY_TOKEN  # conftest gave this process RAY_AUTH_MODE=token
    finally:
        c.shutdown()


def test_two_node_job_starts_every_rank_on_its_own_node(
        cluster: tuple[str, Path], tmp_path: Path) -> None:
    address, token = cluster
    ctl = ControllerProcess(tmp_path / "ctl", address, token)
    ctl.start()
    try:
        names = sorted(n["name"] for n in ctl.json("nodes"))
        assert names == ["gpu-1", "gpu-2", "head"]
        wd = tmp_path / "w"
        wd.mkdir()
        (wd / "rank.py").write_text(RANK)
        job_id = ctl.submit("--nodes", "2", "--gpus", "2", "--", PY, "rank.py", cwd=wd)
        assert ctl.cli("wait", str(job_id)).returncode == 0
        job = ctl.show(job_id)
        ranks = {}
        for rank in (0, 1):
            line = ctl.cli("logs", str(job_id), "--rank", str(rank)).stdout.strip()
            ranks[rank] = dict(kv.split("=", 1) for kv in line.split())
        assert ranks[0]["NODE_RANK"] == "0" and ranks[1]["NODE_RANK"] == "1"
        assert ranks[0]["MASTER_ADDR"] == ranks[1]["MASTER_ADDR"]
        assert ranks[0]["MASTER_PORT"] == ranks[1]["MASTER_PORT"]
        assert all(r["NNODES"] == "2" and r["WORLD_SIZE"] == "4" for r in ranks.values())
        assert all(len(r["CUDA_VISIBLE_DEVICES"].split(",")) == 2 for r in ranks.values())
        by_rank = {a["rank"]: a["node"] for a in job["allocations"]}
        assert sorted(by_rank.values()) == ["gpu-1", "gpu-2"]
        assert len(job["allocations"]) == 4
        too_big = ctl.cli("submit", "--nodes", "3", "--gpus", "2", "--", "true")
        assert too_big.returncode == 2 and "--nodes" in too_big.stderr
    finally:
        ctl.stop()


NAP = """
import os, time
print("attempt", os.environ["CLUSTERCTL_ATTEMPT"], flush=True)
time.sleep(float(os.environ.get("NAP", "600")) if os.environ["CLUSTERCTL_ATTEMPT"] == "1" else 1)
"""


def test_a_retry_does_not_land_on_the_node_that_just_died(tmp_path: Path) -> None:
    """#17: a worker node dies under a job with retries; Ray still lists it for a while, yet the
    retry starts at once on the node that is left (it sat STARTING on the dead one for 120 s)."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "labels": {"clusterctl-node": "head"}})
    workers = {name: c.add_node(num_cpus=1, num_gpus=2, labels={
        "clusterctl-node": name, "clusterctl-gpu-model": "simulated"})
        for name in ("gpu-1", "gpu-2")}
    ctl = ControllerProcess(tmp_path / "ctl", c.address, RAY_TOKEN)
    try:
        ctl.start()
        wd = tmp_path / "w"
        wd.mkdir()
        (wd / "nap.py").write_text(NAP)
        job_id = ctl.submit("--gpus", "2", "--retries", "1", "--", PY, "nap.py", cwd=wd)
        first = ctl.wait_state(job_id, {"RUNNING"})
        dead = first["node_names"][0]
        c.remove_node(workers[dead], allow_graceful=False)  # as a machine that loses power
        lost_at = time.monotonic()
        deadline = time.monotonic() + 90
        while not any(h["state"] == "LOST" for h in ctl.show(job_id)["history"]):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        # Until Ray drops it, `nodes` says the dead node is not answering (nothing lands
        # there): checked on every listing from the LOST until the node has left the list,
        # which it must (Ray drops a node that stopped answering its health checks).
        shown = 0
        while dead in (listed := {n["name"]: n for n in ctl.json("nodes")}):
            assert listed[dead]["suspect"], listed[dead]
            assert time.monotonic() < deadline, f"Ray still lists {dead}: {listed[dead]}"
            shown += 1
            time.sleep(0.3)
        print(f"{dead} shown as not answering in {shown} listings before Ray dropped it")
        while (job := ctl.show(job_id))["state"] not in ("SUCCEEDED", "FAILED", "LOST"):
            assert time.monotonic() < deadline, [(h["state"], h["reason"][:60])
                                                 for h in job["history"]]
            time.sleep(0.5)
        assert job["state"] == "SUCCEEDED", (job["reason"], job["history"])
        assert time.monotonic() - lost_at < 60, "the retry waited on the dead node"
        second = [a for a in job["allocations"] if a["attempt"] == 2]
        assert second and all(a["node"] != dead for a in second)
    finally:
        ctl.stop()
        c.shutdown()


def test_a_draining_node_s_replica_is_moved_with_no_request_lost(
        cluster: tuple[str, Path], tmp_path: Path) -> None:
    """#35: a service's replica on a node being drained gets a replacement on another node, and
    ends only once the replacement is ready: requests go on answered throughout."""
    import threading

    import httpx

    address, token = cluster
    ctl = ControllerProcess(tmp_path / "ctl", address, token)
    ctl.start()
    model = str(Path(__file__).with_name("model_server.py"))
    try:
        r = ctl.cli("serve", "moving", "--gpus", "1", "--workdir", str(tmp_path), "--json",
                    "--", PY, model)
        assert r.returncode == 0, r.stderr

        def service() -> dict:
            return ctl.api("GET", "/v1/services/moving").json()  # type: ignore[no-any-return]

        deadline = time.monotonic() + 90
        while service()["replicas"]["ready"] < 1:
            assert time.monotonic() < deadline, ctl.log_tail()
            time.sleep(0.2)
        (first,) = service()["replica_jobs"]
        node = ctl.show(first)["allocations"][0]["node"]
        codes: list[int] = []
        done = threading.Event()

        def load() -> None:
            with httpx.Client(headers={"Authorization": f"Bearer {ctl.token()}"},
                              timeout=120) as c:
                while not done.is_set():
                    codes.append(c.post(f"http://127.0.0.1:{ctl.port}/services/moving/v1/echo",
                                        content=b"q").status_code)

        loader = threading.Thread(target=load)
        loader.start()
        try:
            assert ctl.cli("nodes", "drain", node, "--reason", "swap a fan").returncode == 0
            ready_seen = []  # the ready replicas, as callers' requests find them, until the end
            deadline = time.monotonic() + 90
            while ctl.show(first)["state"] != "CANCELLED":
                assert time.monotonic() < deadline, ctl.log_tail()
                ready_seen.append(service()["replicas"]["ready"])
            assert min(ready_seen) >= 1, ready_seen  # never none while it moved
            moved = service()
            (second,) = moved["replica_jobs"]
            assert moved["replicas"]["ready"] == 1  # the replacement was ready before the end
            assert ctl.show(second)["allocations"][0]["node"] != node
            count = len(codes)
            while len(codes) < count + 10:  # and answers after the move
                time.sleep(0.05)
        finally:
            done.set()
            loader.join()
        assert codes and set(codes) == {200}, sorted(set(codes))
        ctl.json("serve", "stop", "moving")
    finally:
        ctl.stop()
