"""A Ray head outage (#17, item 3): kill the head under a running job. The controller keeps
serving and says Ray is away (``/healthz`` 503 naming it, a warning on every CLI answer, the
``clusterctl_ray_up`` metric), queues what is submitted meanwhile, reconnects when the head
comes back on its address, and settles the attempt lost with the head at the time it was last
seen alive, not at the reconnection; the job's retry and the queued job then run. A controller
that starts while the head is down serves likewise, and settles its jobs once the head is
back."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from harness import ControllerProcess, http, until

from clusterctl.executor.local_ray import LocalRay, start_local_ray

pytestmark = pytest.mark.ray

MARK = "6000.4242"  # `sleep 6000.4242`: the first attempt's process, found by its argv


def kill_head(head: LocalRay) -> None:
    """SIGKILL every process of the head's session: GCS, raylet, workers, runners."""
    assert head.process is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.process.pid, signal.SIGKILL)
    head.process.wait()


def job_processes() -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"sleep {MARK}"], capture_output=True, text=True)
    return out.stdout.split()


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_a_ray_head_outage_is_reported_survived_and_settled_when_last_seen(
        tmp_path: Path) -> None:
    head = start_local_ray(tmp_path / "ray", num_gpus=3, node_name="node-o",
                           gpu_model="simulated", num_cpus=2)
    port = int(head.address.rsplit(":", 1)[1])
    c = ControllerProcess(tmp_path / "ctl", head.address, head.token_file)
    c.start()
    work = tmp_path / "work"
    work.mkdir()
    try:
        job = c.submit("--gpus", "2", "--retries", "1", "--", "sleep", MARK, cwd=work)
        c.wait_state(job, {"RUNNING"})
        time.sleep(2)  # seen alive by a few passes
        killed_at = time.time()
        kill_head(head)

        health = until(lambda: http("GET", f"http://127.0.0.1:{c.port}/healthz", timeout=10),
                       lambda r: r.status_code == 503, 60, "/healthz to report the outage")
        assert "Ray unavailable since" in health.json()["ray"], health.text
        assert health.headers.get("Retry-After")
        listing = c.cli("jobs", "--json")
        assert listing.returncode == 0, listing.stderr
        assert "warning: Ray unavailable since" in listing.stderr
        metrics = http("GET", f"{c.metrics_url}/metrics", timeout=10).text
        assert "clusterctl_ray_up 0.0" in metrics
        queued = c.cli("submit", "--gpus", "1", "--", "sh", "-c", "echo after the outage",
                       cwd=work)
        assert queued.returncode == 0, queued.stderr  # accepted: it waits in the queue
        assert "warning: Ray unavailable" in queued.stderr
        queued_id = int(queued.stdout.strip())
        # The job's processes die with their runner; nothing holds the GPUs meanwhile.
        until(lambda: job_processes(), lambda p: not p, 30, "the lost attempt's processes")
        time.sleep(5)  # an outage of a while: the controller is still up and serving
        assert c.proc is not None and c.proc.poll() is None, c.log_tail()

        head = start_local_ray(tmp_path / "ray", num_gpus=3, node_name="node-o",
                               gpu_model="simulated", num_cpus=2, port=port)
        back_at = time.time()
        until(lambda: http("GET", f"http://127.0.0.1:{c.port}/healthz", timeout=10),
              lambda r: r.status_code == 200, 120, "the controller to reconnect")

        detail = until(lambda: c.show(job),
                       lambda j: any(h["state"] == "LOST" for h in j["history"]), 60,
                       "the lost attempt to be settled")
        first = [a for a in detail["allocations"] if a["attempt"] == 1]
        assert first and all(a["ended_at"] for a in first), detail
        ended = max(epoch(a["ended_at"]) for a in first)
        assert ended <= killed_at + 2, (ended - killed_at, detail)  # when last seen alive
        assert ended < back_at - 5
        lost = next(h for h in detail["history"] if h["state"] == "LOST")
        assert "Ray head" in (lost["reason"] or ""), lost
        retried = c.wait_state(job, {"RUNNING"}, timeout=120)
        assert retried["attempt"] == 2
        done = c.wait_done(queued_id, timeout=120)
        assert done["state"] == "SUCCEEDED", done
        assert c.cli("logs", str(queued_id)).stdout.strip() == "after the outage"
        assert "clusterctl_ray_up 1.0" in http("GET", f"{c.metrics_url}/metrics",
                                                    timeout=10).text
        log = c.log_tail()
        assert "Ray unavailable" in log and "Ray is back" in log, log

        # The controller crashes, the head dies, the controller starts again: it serves.
        c.kill()
        kill_head(head)
        c.start(healthy=False)
        health = http("GET", f"http://127.0.0.1:{c.port}/healthz", timeout=10)
        assert health.status_code == 503 and "Ray unavailable" in health.json()["ray"]
        assert c.show(job)["state"] == "RUNNING"  # as last seen, until Ray says otherwise
        head = start_local_ray(tmp_path / "ray", num_gpus=3, node_name="node-o",
                               gpu_model="simulated", num_cpus=2, port=port)
        ended = c.wait_done(job, timeout=120)  # its second and last attempt went with the head
        assert (ended["state"], ended["attempt"]) == ("LOST", 2), ended
        assert http("GET", f"http://127.0.0.1:{c.port}/healthz", timeout=10).status_code == 200
    finally:
        c.stop()
        head.stop()
