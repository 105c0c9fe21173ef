"""A GPU fault takes its node out of service (#17, item 10): the real agent with a simulated
double-bit ECC error (XID 48) ships it to a controller on a real Ray head, which drains the
node with the reason, ends the job running there as LOST and requeues it within its retries;
nothing starts there until an admin undrains. A batch shipped twice is one fault."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from factories import sample_batch
from harness import Agent, ControllerProcess, http, until

pytestmark = pytest.mark.ray


def test_a_double_bit_ecc_error_drains_the_node_and_requeues_its_job(
        controller: ControllerProcess, tmp_path: Path) -> None:
    job = controller.submit("--gpus", "1", "--retries", "1", "--", "sleep", "300",
                            cwd=tmp_path)
    controller.wait_state(job, {"RUNNING"})
    agent = Agent(tmp_path / "agent", "node-a", f"http://127.0.0.1:{controller.port}",
                  controller.node_token(), extra=("--simulate-profile", "1=ecc-dbe"))
    agent.start()
    try:
        requeued = until(lambda: controller.show(job),
                         lambda j: any(h["state"] == "LOST" for h in j["history"]),
                         what="the job ended LOST")
        lost = next(h for h in requeued["history"] if h["state"] == "LOST")
        reason = "XID 48 on GPU 1 (double-bit ECC error)"
        assert lost["reason"] == f"node node-a out of service: {reason}"
        assert requeued["state"] == "PENDING"  # retry 1 of 1, and it waits: nowhere to go
        node = controller.json("nodes")[0]
        assert (node["drained"], node["drain_reason"], node["drained_by"]) == \
            (True, reason, "clusterctl:health")
        audit = controller.json("admin", "audit")
        assert any(a["action"] == "node.drain" and a["actor"] == "clusterctl:health"
                   and a["detail"] == reason for a in audit)
        metrics = http("GET", f"{controller.metrics_url}/metrics", timeout=5).text
        assert 'clusterctl_node_health_drains_total{node="node-a"} 1.0' in metrics
        assert any(k.startswith("clusterctl_gpu_xid_errors") for k in
                   http("GET", f"http://127.0.0.1:{agent.port}/metrics", timeout=5).text
                   .split()), "the agent's XID counter"
        controller.settle()
        assert controller.show(job)["state"] == "PENDING"  # nothing starts on a drained node
        # The admin repairs and undrains: the job runs again, and the counted ECC error (no
        # new event) does not take the node out a second time.
        assert controller.cli("nodes", "undrain", "node-a").returncode == 0
        controller.wait_state(job, {"RUNNING"})
        time.sleep(3)  # a few more of the agent's batches
        assert controller.json("nodes")[0]["drained"] is False
        assert controller.show(job)["state"] == "RUNNING"
    finally:
        agent.stop()
        controller.cli("cancel", str(job))


def test_a_fault_shipped_twice_is_one_drain(controller: ControllerProcess) -> None:
    url = f"http://127.0.0.1:{controller.port}/v1/agent/samples"
    auth = {"Authorization": f"Bearer {controller.node_token()}"}
    samples = sample_batch("node-a", gpus=1, reads=1, t0=time.time() - 5)
    samples[0]["xids"] = [79]
    batch = {"node": "node-a", "samples": samples}
    assert http("POST", url, json=batch, headers=auth).status_code == 200
    assert controller.json("nodes")[0]["drained"] is True
    assert controller.cli("nodes", "undrain", "node-a").returncode == 0
    again = http("POST", url, json=batch, headers=auth)  # the agent's retry of the same batch
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert controller.json("nodes")[0]["drained"] is False
    bad = {"node": "node-a", "samples": [{**samples[0], "seq": 99, "xids": [-1]}]}
    assert http("POST", url, json=bad, headers=auth).status_code == 422
