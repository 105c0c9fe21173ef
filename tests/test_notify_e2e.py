"""Notifications (#19 item 5) against a local webhook: a job's --notify hears its end, a
user's, a team's and the cluster's webhooks hear failures, a drained node reaches the cluster's;
a webhook that is down is retried and logged, never fatal; URLs are their owners' to see."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from harness import ControllerProcess
from ports import free_port
from webhook import Hook

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.ray


def test_webhooks_hear_ends_failures_and_drains(ray_head: LocalRay, tmp_path: Path,
                                               hook: Hook) -> None:
    c = ControllerProcess(tmp_path / "ctl", ray_head.address, ray_head.token_file)
    c.env["CLUSTERCTL_NOTIFY_URL"] = f"{hook.url}/cluster"
    c.env["CLUSTERCTL_NOTIFY_PRIVATE_OK"] = "true"  # the receiver listens on loopback
    c.start()
    try:
        assert c.cli("notify", "set", f"{hook.url}/me").returncode == 0
        team = c.show(c.submit("--", "true"))["team"]
        r = c.cli("notify", "set", f"{hook.url}/team", "--team", team, "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["url"] == f"{hook.url}/me"

        ok = c.submit("--notify", f"{hook.url}/job", "--name", "fine", "--", "true")
        assert c.wait_done(ok)["state"] == "SUCCEEDED"
        [end] = hook.at("/job")
        assert (end["event"], end["job_id"], end["state"], end["name"]) == (
            "job_succeeded", ok, "SUCCEEDED", "fine")
        assert end["text"].startswith(f"clusterctl: job {ok} fine of ")
        # Only now the failing job: the notifier reads ends in order and queues their
        # deliveries first in, first out, so whatever `ok` sent to /me was queued before
        # anything of `bad`; once `bad` has reached /me, a success sent there would have too.
        down = f"http://127.0.0.1:{free_port()}/down"
        bad = c.submit("--notify", down, "--name", "broken", "--", "sh", "-c", "exit 3")
        assert c.wait_done(bad)["state"] == "FAILED"

        for path in ("/me", "/team", "/cluster"):  # a failure reaches every owner's hook
            [failed] = hook.at(path)
            assert (failed["event"], failed["job_id"], failed["state"]) == (
                "job_failed", bad, "FAILED")
            assert {"user", "team", "reason", "cost", "text"} <= set(failed)
            assert "FAILED" in failed["text"] and "broken" in failed["text"]
        assert not [b for p, b in hook.got if p == "/me" and b["job_id"] == ok]  # success: quiet

        log = tmp_path / "ctl" / "controller.log"
        deadline = time.monotonic() + 30  # the hook that is down: retried, and logged by host
        while "webhook to 127.0.0.1" not in log.read_text():
            assert time.monotonic() < deadline, c.log_tail()
            time.sleep(0.5)
        assert "/down" not in log.read_text()  # the URL itself stays its owner's
        assert c.api("GET", "/healthz").status_code == 200

        assert c.cli("nodes", "drain", "node-a", "--reason", "fan").returncode == 0
        [drained] = hook.at("/cluster", "node_drained")
        assert drained["text"] == "clusterctl: node node-a drained by root: fan"
        assert c.cli("nodes", "undrain", "node-a").returncode == 0

        assert c.show(bad)["notify_url"] == down  # its owner sees it
        dana = json.loads(c.cli("admin", "user", "add", "dana", "--team", team,
                                "--json").stdout)["token"]
        seen = json.loads(c.cli("notify", "show", "--json", token=dana).stdout)
        assert seen["url"] is None and seen["teams"] == {team: "set"}  # not the URL
        assert all("notify_url" not in j for j in json.loads(
            c.cli("jobs", "--all", "--json", token=dana).stdout))
        r = c.cli("notify", "set", f"{hook.url}/x", "--team", team, token=dana)
        assert r.returncode == 1 and "only an admin" in r.stderr
        for bad_args, field in ((["submit", "--notify", "ftp://x", "--", "true"], "--notify"),
                                (["notify", "set", "not a url"], "URL")):
            r = c.cli(*bad_args)
            assert r.returncode == 2 and r.stderr.startswith(f"error: {field}:"), r.stderr
    finally:
        c.stop()


def test_budgets_warn_notify_and_hold_the_teams_new_jobs(ray_head: LocalRay, tmp_path: Path,
                                                         hook: Hook) -> None:
    """#20 item 2: spent as the cost report charges it, a notification when a team goes
    over, its new jobs held (reason budget) while enforced, released by raising it."""
    c = ControllerProcess(tmp_path / "ctl", ray_head.address, ray_head.token_file)
    c.env["CLUSTERCTL_NOTIFY_URL"] = f"{hook.url}/cluster"
    c.env["CLUSTERCTL_NOTIFY_PRIVATE_OK"] = "true"  # the receiver listens on loopback
    c.start()
    try:
        bought = (datetime.now(timezone.utc) - timedelta(days=30)).date().isoformat()
        r = c.cli("hardware", "add", "node-a", "--gpus", "4", "--gpu-model", "A100",
                  "--price", "100000000", "--purchased", bought, "--life", "36mo",
                  "--resale", "0.2")  # dear enough that seconds of it cost cents
        assert r.returncode == 0, r.stderr
        first = c.submit("--team", "ml", "--gpus", "2", "--", "sleep", "2")
        assert c.wait_done(first)["state"] == "SUCCEEDED"
        cost = c.json("report", "cost", "--by", "team", "--since", "1d")
        charged = sum(r["total_cost"] for r in cost["rows"] if r["key"] == "ml")
        assert charged > 0

        r = c.cli("budget", "set", "ml", "0.0001", "--enforce", "--json")
        assert r.returncode == 0, r.stderr
        b = json.loads(r.stdout)
        assert b["state"] == "over" and b["enforce"] and b["spent"] >= charged - 0.01
        assert b["forecast"] >= b["spent"] and b["period"] == f"{datetime.now(timezone.utc):%Y-%m}"
        [told] = hook.at("/cluster", "budget_over")
        assert told["team"] == "ml" and "is over its $0.00 monthly budget" in told["text"]

        r = c.cli("submit", "--team", "ml", "--", "true")
        assert r.returncode == 0 and "budget: team ml spent" in r.stderr, r.stderr
        held = int(r.stdout)
        deadline = time.monotonic() + 30
        while (job := c.show(held)).get("wait_reason") != "budget":
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["state"] == "PENDING" and "monthly budget" in job["wait_detail"]
        other = c.submit("--team", "vision", "--", "true")  # other teams go on
        assert c.wait_done(other)["state"] == "SUCCEEDED"

        dana = json.loads(c.cli("admin", "user", "add", "dana", "--team", "vision",
                                "--json").stdout)["token"]
        assert json.loads(c.cli("budget", "list", "--json", token=dana).stdout) == []
        r = c.cli("budget", "set", "ml", "1000", token=dana)
        assert r.returncode == 1 and "only an admin" in r.stderr
        for bad, field in ((["budget", "set", "ml", "lots"], "AMOUNT"),
                           (["budget", "set", "ml", "5", "--per", "week"], "--per")):
            r = c.cli(*bad)
            assert r.returncode == 2 and r.stderr.startswith(f"error: {field}:"), r.stderr

        raised = json.loads(c.cli("budget", "set", "ml", "100000", "--json").stdout)
        assert raised["state"] == "ok"
        assert c.wait_done(held)["state"] == "SUCCEEDED"  # raising it released the job
        listed = json.loads(c.cli("budget", "list", "--json").stdout)
        assert [b["team"] for b in listed] == ["ml"]
        assert c.cli("budget", "remove", "ml").returncode == 0
        assert json.loads(c.cli("budget", "list", "--json").stdout) == []
    finally:
        c.stop()
