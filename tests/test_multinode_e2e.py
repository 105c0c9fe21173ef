"""A 2-node x 2-GPU job on a three-node Ray cluster on one machine (ray.cluster_utils.Cluster):
a GPU-less head and two workers with 2 simulated GPUs each."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RAY_TOKEN
from harness import Controller

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
    ctl = Controller(tmp_path / "ctl", address, token)
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
