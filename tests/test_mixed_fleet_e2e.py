"""A mixed fleet on a real Ray cluster (#18): a GPU-less head, a node of 2 H100s and one of 2
RTX 4090s (ray.cluster_utils.Cluster, models as node labels). Typed, any-of, memory-bound and
untyped jobs land on the GPUs they accept; a request the fleet can never hold is refused at
submit with exit 2, naming what exists, and nothing is stored; a quota per type reclaims GPUs
of its type."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RAY_TOKEN
from harness import ControllerProcess

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "labels": {"clusterctl-node": "head"}})
    for name, model in (("h100-1", "H100-80GB"), ("rtx-1", "RTX-4090")):
        c.add_node(num_cpus=2, num_gpus=2, labels={"clusterctl-node": name,
                                                   "clusterctl-gpu-model": model})
    try:
        yield c.address, RAY_TOKEN
    finally:
        c.shutdown()


def nodes_of(ctl: ControllerProcess, job_id: int) -> set[str]:
    return {a["node"] for a in ctl.show(job_id)["allocations"]}


def test_typed_any_of_and_untyped_jobs_land_on_the_gpus_they_accept(
        fleet: tuple[str, Path], tmp_path: Path) -> None:
    address, token = fleet
    ctl = ControllerProcess(tmp_path / "ctl", address, token)
    ctl.start()
    work = tmp_path / "w"
    work.mkdir()
    try:
        small = ctl.submit("--gpu-type", "4090", "--", "true", cwd=work)
        assert ctl.wait_done(small)["state"] == "SUCCEEDED"
        assert nodes_of(ctl, small) == {"rtx-1"}

        h100 = ctl.submit("--gpus", "H100:2", "--", "sleep", "300", cwd=work)
        ctl.wait_state(h100, {"RUNNING"})
        assert nodes_of(ctl, h100) == {"h100-1"}
        waiting = ctl.submit("--gpus", "h100:1", "--", "true", cwd=work)
        big_mem = ctl.submit("--gpus", "1", "--gpu-mem", "40G", "--", "true", cwd=work)
        any_of = ctl.submit("--gpus", "2", "--gpu-type", "H100,4090", "--", "true", cwd=work)
        assert ctl.wait_done(any_of)["state"] == "SUCCEEDED"
        assert nodes_of(ctl, any_of) == {"rtx-1"}  # H100 first, but none free: the next
        deadline = time.monotonic() + 30
        while not (job := ctl.show(waiting)).get("wait_detail"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "PENDING" and job["wait_detail"] == "needs 1 h100; 0 of 2 free"
        assert job["gpu_types"] == ["h100"]
        shown = ctl.cli("show", str(waiting)).stdout
        assert "gpus 1 h100" in shown, shown
        # Only the H100s have 40 GiB (80GB in their name; a 4090 has 24): it waits for them.
        assert ctl.show(big_mem)["state"] == "PENDING"

        before = len(ctl.json("jobs", "--all"))
        refused = ctl.cli("submit", "--gpus", "H100:3", "--", "true", cwd=work)
        assert refused.returncode == 2
        assert ("--gpus: no node has 3 H100 GPUs; here: H100-80GB (2 per node, 1 node), "
                "RTX-4090 (2 per node, 1 node)") in refused.stderr, refused.stderr
        unknown = ctl.cli("submit", "--gpu-type", "B200", "--", "true", cwd=work)
        assert unknown.returncode == 2 and "--gpu-type: no node has B200" in unknown.stderr
        mixed_gang = ctl.cli("submit", "--nodes", "2", "--gpus", "2", "--", "true", cwd=work)
        assert mixed_gang.returncode == 2 and "one model" in mixed_gang.stderr
        for bad, field in ((["--gpus", "H100:0"], "--gpus"), (["--gpus", ":2"], "--gpus"),
                           (["--gpus", "H100:two"], "--gpus"), (["--gpu-mem", "40X"],
                                                                "--gpu-mem")):
            r = ctl.cli("submit", *bad, "--", "true", cwd=work)
            assert r.returncode == 2 and r.stderr.startswith(f"error: {field}:"), (bad, r)
        assert len(ctl.json("jobs", "--all")) == before  # nothing stored

        assert ctl.cli("cancel", str(h100)).returncode == 0
        for job_id in (waiting, big_mem):
            assert ctl.wait_done(job_id)["state"] == "SUCCEEDED"
            assert nodes_of(ctl, job_id) == {"h100-1"}
    finally:
        ctl.stop()


def test_a_quota_per_type_reclaims_its_type(fleet: tuple[str, Path], tmp_path: Path) -> None:
    """vision is guaranteed 2 H100 (and 4 B200 the fleet lacks: a warning); nlp borrows both
    nodes. vision's untyped job reclaims the H100s, not the newer job on the 4090s that a
    quota over all types would take."""
    address, token = fleet
    ctl = ControllerProcess(tmp_path / "ctl", address, token)
    ctl.env.update({"CLUSTERCTL_QUOTAS": "vision=H100:2+B200:4,nlp=0",
                    "CLUSTERCTL_PREEMPT_GRACE_S": "3", "CLUSTERCTL_PREEMPT_MIN_RUN_S": "0"})
    ctl.start()
    work = tmp_path / "w"
    work.mkdir()
    borrowers: list[int] = []
    try:
        for kind in ("H100", "4090"):
            borrowers.append(ctl.submit("--team", "nlp", "--gpus", f"{kind}:2", "--", "sleep",
                                        "300", cwd=work))
            ctl.wait_state(borrowers[-1], {"RUNNING"})
        on_h100, on_rtx = borrowers
        claim = ctl.submit("--team", "vision", "--gpus", "2", "--", "true", cwd=work)
        assert ctl.wait_done(claim, timeout=90)["state"] == "SUCCEEDED"
        assert nodes_of(ctl, claim) == {"h100-1"}
        assert ctl.show(on_h100)["preemptions"] == 1
        rtx = ctl.show(on_rtx)
        assert rtx["state"] == "RUNNING" and rtx["preemptions"] == 0
        log = (tmp_path / "ctl" / "controller.log").read_text()
        assert "quota vision: B200: no node reports GPUs of that type" in log, log[-3000:]
        # what `plan` replays the cluster's history with
        assert ctl.api("GET", "/v1/quotas").json() == {
            "quotas": {"nlp": 0}, "type_quotas": {"vision": {"H100": 2, "B200": 4}},
            "policy": {"scheduling_policy": "default", "starve_after_s": None,
                       "preempt": True, "preempt_grace_s": 3, "preempt_min_run_s": 0,
                       "user_gpu_limit": None, "demote_after_gpu_h": None,
                       "promote_after_slowdown": None}}
    finally:
        for job_id in borrowers:
            ctl.cli("cancel", str(job_id))
        ctl.stop()
