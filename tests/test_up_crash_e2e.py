"""`clusterctl up` after a crash (#17, item 2): SIGKILL the embedded `up` (its own Ray head
and agent) while jobs run, start it again, and it takes over what the crashed one left
instead of starting a second cluster beside it: the same Ray head (its jobs ran on; one that
ended meanwhile gets its true outcome, not LOST), the old agent stopped and a new one
shipping, one agent port, one set of GPUs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from harness import ControllerProcess
from ports import free_port

from clusterctl.executor.local_ray import process_alive

pytestmark = pytest.mark.ray


def test_up_after_a_crash_takes_over_its_ray_head_and_replaces_its_agent(
        tmp_path: Path) -> None:
    c = ControllerProcess(tmp_path / "ctl", "unused", tmp_path / "unused-token")
    agent_port = free_port()
    c.up_args = ["up", "--simulate-gpus", "2", "--port", str(c.port), "--data-dir",
                 str(c.data_dir), "--kill-grace", "2s", "--agent-port", str(agent_port),
                 "--agent-interval", "1s"]
    c.start(timeout=180)
    try:
        state = json.loads((c.data_dir / "up-state.json").read_text())
        head_pid, agent_pid = state["ray"]["pid"], state["agent_pid"]
        assert (c.data_dir / "up-state.json").stat().st_mode & 0o777 == 0o600
        work = tmp_path / "work"
        work.mkdir()
        short = c.submit("--gpus", "1", "--", "sh", "-c", "sleep 4; echo finished", cwd=work)
        long = c.submit("--gpus", "1", "--", "sleep", "300", cwd=work)
        c.wait_state(short, {"RUNNING"})
        c.wait_state(long, {"RUNNING"})
        c.kill()  # the crash: Ray's head and the agent are left running
        assert process_alive(head_pid) and process_alive(agent_pid)
        time.sleep(6)  # the short job ends while no controller watches
        c.start(timeout=180)
        log = c.log_tail()
        assert f"re-attaching to the Ray head a crashed `up` left running (pid {head_pid}" \
            in log, log
        assert f"stopping the GPU agent a crashed `up` left running (pid {agent_pid})" in log
        done = c.wait_done(short)
        assert (done["state"], done["exit_code"]) == ("SUCCEEDED", 0), done
        assert c.cli("logs", str(short)).stdout.strip() == "finished"
        assert c.show(long)["state"] == "RUNNING"  # ran on through the crash
        assert not process_alive(agent_pid)
        new_state = json.loads((c.data_dir / "up-state.json").read_text())
        assert new_state["ray"]["pid"] == head_pid and new_state["agent_pid"] != agent_pid
        nodes = c.json("nodes")
        assert len(nodes) == 1 and nodes[0]["gpus"] == 2  # one cluster, not two
        deadline = time.monotonic() + 60  # the new agent ships with its new token
        while not any(g.get("sampled_at") for g in c.json("nodes")[0]["gpu_jobs"]):
            assert time.monotonic() < deadline, (c.data_dir / "agent" / "agent.log").read_text()
            time.sleep(0.5)
    finally:
        c.stop()
    # An orderly stop leaves nothing to take over, and nothing running.
    assert not (c.data_dir / "up-state.json").exists()
    deadline = time.monotonic() + 30
    while process_alive(head_pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not process_alive(head_pid)


def test_up_starts_its_ray_head_again_and_the_job_lost_with_it_is_retried(
        tmp_path: Path) -> None:
    """The embedded Ray head dies under `up` (#17, item 3): `up` starts it again on its
    port, the controller (serving all along) reconnects, and the job lost with the head runs
    again as its retry."""
    c = ControllerProcess(tmp_path / "ctl", "unused", tmp_path / "unused-token")
    c.up_args = ["up", "--simulate-gpus", "2", "--port", str(c.port), "--data-dir",
                 str(c.data_dir), "--kill-grace", "2s", "--no-agent"]
    c.start(timeout=180)
    new_pid = None
    try:
        work = tmp_path / "work"
        work.mkdir()
        job = c.submit("--gpus", "2", "--retries", "1", "--", "sleep", "6000.5151", cwd=work)
        c.wait_state(job, {"RUNNING"})
        head_pid = json.loads((c.data_dir / "up-state.json").read_text())["ray"]["pid"]
        os.killpg(head_pid, signal.SIGKILL)  # the head and every Ray process of its session
        deadline = time.monotonic() + 180
        while True:
            detail = c.show(job)
            if detail["attempt"] == 2 and detail["state"] == "RUNNING":
                break
            assert time.monotonic() < deadline, (detail, c.log_tail())
            time.sleep(1)
        assert [h["state"] for h in detail["history"]].count("LOST") == 1, detail
        log = c.log_tail()
        assert f"the Ray head (pid {head_pid}) is gone" in log and "Ray head is back" in log
        new_pid = json.loads((c.data_dir / "up-state.json").read_text())["ray"]["pid"]
        assert new_pid != head_pid and process_alive(new_pid)
    finally:
        c.stop()
    assert new_pid is not None
    deadline = time.monotonic() + 30
    while process_alive(new_pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not process_alive(new_pid)  # the orderly stop ends the head it started again
