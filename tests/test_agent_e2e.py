"""The agent end to end: the real `clusterctl-agent` (simulated GPUs) shipping over real HTTP to
a controller started with `clusterctl up` on a real Ray head, and the usage it attributes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from factories import sample_batch
from harness import Agent, ControllerProcess, http
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.ray


@pytest.fixture
def agent(controller: ControllerProcess, tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path / "agent", "node-a", f"http://127.0.0.1:{controller.port}",
              controller.node_token())
    a.start()
    yield a
    a.stop()


def wait_for(predicate, timeout: float = 60, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def utc(iso: str) -> datetime:
    at = datetime.fromisoformat(iso)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def test_job_usage_is_attributed_and_nodes_show_live_gpus(controller: ControllerProcess,
                                                           agent: Agent) -> None:
    # Busy until the test has looked at it running (a fixed length ran out under load).
    release = controller.root / "release"
    busy = (f"import os, time\nend = time.time() + 300\n"
            f"while time.time() < end and not os.path.exists({str(release)!r}): pass")
    job_id = controller.submit("--gpus", "2", "--", "python3", "-c", busy)
    started = utc(controller.wait_state(job_id, {"RUNNING"})["started_at"])

    def sampled_since_start() -> dict[int, dict]:  # type: ignore[type-arg]
        gpus = {g["index"]: g for g in controller.json("nodes")[0]["gpu_jobs"]}
        fresh = all(g["sampled_at"] and utc(g["sampled_at"]) > started for g in gpus.values())
        # The job's GPUs computing: the first read after its start may come before its
        # process is up (CI saw `top` show the job's GPUs at 0 % then).
        computing = all(g["utilization"] for g in gpus.values() if g["job_id"] == job_id)
        return gpus if fresh and computing and len(gpus) == 4 else {}

    wait_for(sampled_since_start,
             what="a stored sample of every GPU read while the job runs, its own computing")
    gpus = sampled_since_start()
    held = [g for g in gpus.values() if g["job_id"] == job_id]
    assert len(held) == 2
    assert all(g["uuid"] and g["sampled_at"] and g["memory_total_bytes"] for g in gpus.values())
    # #31 item 13: the node's own memory, from its agent (this machine's /proc/meminfo)
    used = controller.json("nodes")[0]["memory_used"]
    assert used is not None and 0.0 < used < 1.0, used
    top = controller.cli("top", "--once")
    assert top.returncode == 0 and "node-a" in top.stdout, top.stderr
    assert "█" in top.stdout and f"\n {job_id} " in top.stdout.split("running")[1], top.stdout
    frame = json.loads(controller.cli("top", "--once", "--json").stdout)
    assert {"nodes", "jobs", "cost_per_hour"} <= set(frame)
    assert controller.cli("top", "--iterations", "1").returncode == 0  # the live view, once
    # the agent labels the held GPUs with the job and its user, ids only (it learns who holds
    # what from the controller's answer to its next batch: wait for that one)
    def labelled() -> list[str]:
        scrape = http("GET", f"http://127.0.0.1:{agent.port}/metrics", timeout=5).text
        return sorted(s.labels["gpu"] for fam in text_string_to_metric_families(scrape)
                      if fam.name == "clusterctl_gpu_utilization_ratio" for s in fam.samples
                      if s.labels["job"] == str(job_id))

    wait_for(lambda: labelled() == sorted(str(g["index"]) for g in held), timeout=30,
             what="the agent's metrics labelled with the job")

    release.touch()
    done = controller.wait_done(job_id)
    assert done["state"] == "SUCCEEDED"
    # the read after the end carries energy used up to it: wait until samples cover the run
    wait_for(lambda: controller.show(job_id)["usage"]["coverage"] >= 0.99,
             what="samples covering the whole job")
    usage = controller.show(job_id)["usage"]
    assert len(usage["gpus"]) == 2
    assert {g["gpu_uuid"] for g in usage["gpus"]} == {g["uuid"] for g in held}
    assert 0.3 < usage["avg_utilization"] <= 1.0
    assert usage["peak_memory_bytes"] > 10 << 30
    assert usage["avg_power_watts"] > 2 * 150  # two busy GPUs
    seconds = sum(
        (time.mktime(time.strptime(a["ended_at"][:19], "%Y-%m-%dT%H:%M:%S"))
         - time.mktime(time.strptime(a["started_at"][:19], "%Y-%m-%dT%H:%M:%S")))
        for a in done["allocations"])
    # energy is power over the time held: between idle and full power of the GPUs
    assert 60 * seconds / 3.6e6 * 0.5 < usage["energy_kwh"] < 420 * (seconds + 2) / 3.6e6
    shown = controller.cli("show", str(job_id))
    assert "usage" in shown.stdout and "kWh" in shown.stdout


def test_samples_survive_controller_outage_and_agent_restart(controller: ControllerProcess,
                                                             agent: Agent) -> None:
    wait_for(lambda: agent.metrics().get("clusterctl_agent_samples_shipped_total", 0) >= 8,
             what="first shipments")
    controller.kill()
    # reads go on, into the spool
    wait_for(lambda: agent.metrics()["clusterctl_agent_samples_spooled"] >= 8,
             what="samples spooled while the controller is down")
    read_by_first = agent.metrics()["clusterctl_agent_samples_read_total"]
    agent.kill()  # and the agent dies too, with unshipped samples
    agent.start()
    wait_for(lambda: agent.metrics()["clusterctl_agent_samples_read_total"] >= 8,
             what="the restarted agent reading into its spool")
    controller.start()
    deadline = time.monotonic() + 90
    while True:  # until one scrape shows an empty spool: all read until then is stored
        m = agent.metrics()
        if m["clusterctl_agent_samples_spooled"] == 0:
            break
        assert time.monotonic() < deadline, "the spool did not drain"
        time.sleep(0.3)
    read_by_second = m["clusterctl_agent_samples_read_total"]
    agent.stop()
    db = controller.db_url.replace("sqlite:///", "")
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        rows = c.execute(text("SELECT gpu_uuid, count(*), count(DISTINCT seq), min(seq), "
                              "max(seq) FROM gpu_sample GROUP BY gpu_uuid")).all()
    assert len(rows) == 4
    for _uuid, n, distinct, low, high in rows:
        assert n == distinct == high - low + 1  # every read stored, exactly once, no gap
    # nothing either agent process read before its last scrape is missing
    assert sum(r[1] for r in rows) >= read_by_first + read_by_second


def test_batch_sent_twice_and_bad_batches(controller: ControllerProcess) -> None:
    token = controller.node_token()
    url = f"http://127.0.0.1:{controller.port}/v1/agent/samples"
    auth = {"Authorization": f"Bearer {token}"}
    now = time.time()
    batch = {"node": "node-a", "samples": sample_batch("node-a", reads=5, t0=now - 60)}
    first = http("POST", url, json=batch, headers=auth).json()
    again = http("POST", url, json=batch, headers=auth).json()
    assert (first["inserted"], first["duplicates"]) == (10, 0)
    assert (again["inserted"], again["duplicates"]) == (0, 10)
    assert http("POST", url, json={**batch, "node": "node-b"}, headers=auth).status_code == 403
    assert http("POST", url, json=batch, headers={"Authorization": "Bearer nope"}
                      ).status_code == 401
    user_token = controller.env.get("CLUSTERCTL_TOKEN") or controller.token()
    assert http("POST", url, json=batch, headers={"Authorization": f"Bearer {user_token}"}
                      ).status_code == 401  # a user token is not a node token
    bad = sample_batch("node-a", reads=2, seq0=50, t0=now - 30)
    bad[1]["utilization"] = 1.7
    r = http("POST", url, json={"node": "node-a", "samples": bad}, headers=auth)
    assert r.status_code == 422 and "utilization" in r.json()["detail"]
    assert http("POST", url, json={"node": "node-a", "samples": bad[:1]},
                      headers=auth).json()["inserted"] == 1  # nothing of the bad batch stayed
    # A node whose clock is wrong: its samples from the future (or older than the raw
    # retention) are refused and counted; the others of the batch are stored.
    future = sample_batch("node-a", gpus=1, reads=1, seq0=90, t0=99999999999.0)
    good = sample_batch("node-a", gpus=1, reads=1, seq0=91, t0=now - 10)
    mixed = http("POST", url, json={"node": "node-a", "samples": future + good}, headers=auth)
    assert mixed.status_code == 200, mixed.text
    assert (mixed.json()["inserted"], mixed.json()["refused"]) == (1, 1)
    only_future = http("POST", url, json={"node": "node-a", "samples": future}, headers=auth)
    assert only_future.status_code == 422 and only_future.json()["field"] == "samples"
    too_old = sample_batch("node-a", gpus=1, reads=1, seq0=92, t0=now - 30 * 86400)
    assert http("POST", url, json={"node": "node-a", "samples": too_old},
                      headers=auth).status_code == 422
    gpu0 = next(g for g in controller.json("nodes")[0]["gpu_jobs"] if g["index"] == 0)
    assert utc(gpu0["sampled_at"]).timestamp() < time.time() + 1  # the live view is not pinned
    metrics = http("GET", f"{controller.metrics_url}/metrics", timeout=5).text
    assert 'clusterctl_samples_refused_total{reason="future"} 2.0' in metrics
    assert 'clusterctl_samples_refused_total{reason="too_old"} 1.0' in metrics


def test_node_token_needs_an_admin_and_a_host_name(controller: ControllerProcess) -> None:
    r = controller.cli("admin", "node-token", "bad name!")
    assert r.returncode == 2 and "NODE" in r.stderr
    created = controller.json("admin", "user", "add", "eve", "--team", "t")
    r = controller.cli("admin", "node-token", "node-a", token=created["token"])
    assert r.returncode == 1 and "admin" in r.stderr


def test_a_process_on_a_gpu_no_job_holds_is_reported(controller: ControllerProcess, agent: Agent,
                                                     tmp_path: Path) -> None:
    """#17: a process of a job left on a GPU (here: one started by hand with a job's
    environment, as a leftover would have it) shows in `nodes` and as the agent's metric."""
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, "CLUSTERCTL_JOB_ID": "999", "CUDA_VISIBLE_DEVICES": "3",
             "CLUSTERCTL_NODE": "node-a"})
    try:
        def gpu3() -> dict:  # type: ignore[type-arg]
            return next(g for g in controller.json("nodes")[0]["gpu_jobs"] if g["index"] == 3)

        wait_for(lambda: gpu3()["stray_processes"] == 1, what="the stray process in nodes")
        assert "1 stray process" in controller.cli("nodes").stdout
        scrape = http("GET", f"http://127.0.0.1:{agent.port}/metrics", timeout=5).text
        strays = {s.labels["gpu"]: s.value for fam in text_string_to_metric_families(scrape)
                  if fam.name == "clusterctl_gpu_stray_processes" for s in fam.samples}
        assert strays["3"] == 1 and strays["0"] == 0
    finally:
        leftover.kill()
        leftover.wait()
    wait_for(lambda: gpu3()["stray_processes"] == 0, what="the stray process gone")


def test_an_idle_job_is_warned_then_ended_and_a_busy_one_kept(controller: ControllerProcess,
                                                              agent: Agent) -> None:
    """#19 item 4, side by side on the simulated backend: `sleep` holds an idle GPU, a busy
    loop a busy one (nothing in either that a real job would not do)."""
    idle = controller.submit("--gpus", "1", "--idle-timeout", "12s", "--time-limit", "10m",
                             "--", "sleep", "300")
    # Bursts of computing between waits, as a job feeding a GPU does: a fifth of a core, well
    # over the simulated GPU's busy mark, without taking a core from the rest of the suite.
    spin = ("import time\nend = time.time() + 300\nwhile time.time() < end:\n"
            " burst = time.process_time() + 0.02\n while time.process_time() < burst: pass\n"
            " time.sleep(0.08)")
    busy = controller.submit("--gpus", "1", "--idle-timeout", "12s", "--", "python3", "-c",
                             spin)
    for job_id in (idle, busy):
        controller.wait_state(job_id, {"RUNNING"})
    seen: list[str] = []
    wait_for(lambda: seen.append(controller.show(idle).get("idle_warning") or "") or seen[-1],
             what="the idle warning")  # shown by `show` for the grace before the end
    assert seen[-1].startswith("its GPUs have been under 10% for 9s; it ends by ")
    done = controller.wait_done(idle, timeout=90)
    assert (done["state"], done["reason"]) == ("CANCELLED", "idle: GPUs under 10% for 12s")
    kept = controller.show(busy)
    assert kept["state"] == "RUNNING" and kept["idle_warning"] is None
    # The waste report counts what it gave back: its GPU up to its 10-minute time limit.
    waste = controller.json("report", "waste", "--since", "1h")["reclaimed"]
    ran = (datetime.fromisoformat(done["ended_at"])
           - datetime.fromisoformat(done["started_at"])).total_seconds()
    assert (waste["jobs"], waste["gpus"], waste["without_limit"]) == (1, 1, 0)
    assert waste["gpu_hours"] == pytest.approx((600 - ran) / 3600, abs=2 / 3600)
    text = controller.cli("report", "waste", "--since", "1h").stdout
    assert "Idle reclaim ended 1 job(s), freeing 1 GPU(s): 0.2 GPU-hours up to their time " \
           "limits" in " ".join(text.split())
    assert controller.cli("cancel", str(busy)).returncode == 0
    bad = controller.cli("submit", "--idle-timeout", "soon", "--", "true")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --idle-timeout:")
