"""The scheduling policy live, through the `clusterctl` command on real Ray (4 simulated GPUs):
quota reclaim by preemption and requeue, --no-preempt, dependencies, arrays, the per-user GPU
limit, and why each pending job waits in `clusterctl jobs`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import ControllerProcess, clusterctl_argv, http

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.ray
PY = sys.executable

# Runs until $RELEASE exists. On SIGTERM it "checkpoints" (records the grace it was given) and
# exits 0, as a training script would; a later attempt finds the checkpoint and ends at once.
JOB = """
import os, pathlib, signal, sys, time
out = pathlib.Path(os.environ["OUT"]) / os.environ["CLUSTERCTL_JOB_ID"]
attempt = os.environ["CLUSTERCTL_ATTEMPT"]
def note(text):
    with open(out, "a") as f:
        f.write(f"{attempt} {text}\\n")
    print(f"{attempt} {text}", flush=True)
def stop(*_):
    note("checkpoint grace=" + os.environ["CLUSTERCTL_PREEMPT_GRACE"])
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note("start index=" + os.environ.get("CLUSTERCTL_ARRAY_INDEX", "-"))
if out.read_text().count("checkpoint"):
    sys.exit(0)
nap = float(sys.argv[1]) if len(sys.argv) > 1 else 0
if nap:
    time.sleep(nap)
else:
    while not os.path.exists(os.environ["RELEASE"]):
        time.sleep(0.1)
note("end")
sys.exit(int(os.environ.get("EXIT", "0")))
"""


@pytest.fixture
def make_controller(ray_head: LocalRay, tmp_path: Path
                    ) -> Iterator[Callable[..., ControllerProcess]]:
    made: list[ControllerProcess] = []

    def make(**settings: str) -> ControllerProcess:
        c = ControllerProcess(tmp_path / "ctl", ray_head.address, ray_head.token_file)
        c.env.update({f"CLUSTERCTL_{k.upper()}": v for k, v in settings.items()})
        c.start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


class Work:
    """The job script, its output directory and release file."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "work"
        self.dir.mkdir()
        (self.dir / "job.py").write_text(JOB)
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.release = tmp_path / "release"

    def args(self, *flags: str, nap: float | None = None) -> list[str]:
        extra = [str(nap)] if nap is not None else []
        return [*flags, "--env", f"OUT={self.out}", "--env", f"RELEASE={self.release}",
                "--", PY, "job.py", *extra]

    def lines(self, job_id: int) -> list[str]:
        path = self.out / str(job_id)
        return path.read_text().splitlines() if path.exists() else []


def eventually(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.25)


def by_id(c: ControllerProcess) -> dict[int, dict[str, Any]]:
    return {j["id"]: j for j in c.json("jobs")}


def serve_chat(c: ControllerProcess, w: Work, team: str, gpus: int) -> None:
    """A service "chat" of one replica for ``team``, answering (a request is held until the
    replica is up)."""
    model = str(Path(__file__).with_name("model_server.py"))
    r = c.cli("serve", "chat", "--team", team, "--gpus", str(gpus), "--workdir", str(w.dir),
              "--", PY, model)
    assert r.returncode == 0, r.stderr
    answer = httpx.post(f"http://127.0.0.1:{c.port}/services/chat/v1/echo", content=b"hi",
                        headers={"Authorization": f"Bearer {c.token()}"}, timeout=120)
    assert answer.status_code == 200, answer.text


def test_a_service_s_replica_takes_gpus_another_team_borrows(
        make_controller: Callable[..., ControllerProcess], tmp_path: Path) -> None:
    """#35: a scale-up of a service within its team's quota preempts the batch jobs of a team
    over its own (borrowed GPUs), as any job of its team would; the in-quota ones stay."""
    c = make_controller(quotas="a=2,b=2", preempt_grace_s="5", preempt_min_run_s="0")
    w = Work(tmp_path)
    team_a = [c.submit(*w.args("--team", "a", "--gpus", "2"), cwd=w.dir) for _ in range(2)]
    for j in team_a:
        c.wait_state(j, {"RUNNING"})
    serve_chat(c, w, "b", 1)
    # One of a's jobs (the 2 GPUs it borrowed) was preempted; the other (its quota) runs on.
    shown = sorted((c.show(j)["preemptions"], c.show(j)["state"]) for j in team_a)
    assert shown == [(0, "RUNNING"), (1, "PENDING")], shown
    assert c.cli("serve", "stop", "chat").returncode == 0
    w.release.touch()


def test_borrowed_gpus_are_reclaimed_by_preemption_and_the_job_requeues(
        make_controller: Callable[..., ControllerProcess], tmp_path: Path) -> None:
    c = make_controller(quotas="a=2,b=2", preempt_grace_s="10", preempt_min_run_s="4")
    w = Work(tmp_path)
    kept = [c.submit(*w.args("--team", "a", "--no-preempt"), cwd=w.dir) for _ in range(2)]
    for j in kept:
        c.wait_state(j, {"RUNNING"})
    # Team a is at its quota: a --no-preempt job may not borrow, though 2 GPUs are idle.
    no_borrow = c.submit(*w.args("--team", "a", "--no-preempt"), cwd=w.dir)
    why = eventually("a wait reason", lambda: by_id(c)[no_borrow].get("wait_reason"))
    assert why == "quota"
    assert "quota" in c.cli("jobs").stdout
    borrowers = [c.submit(*w.args("--team", "a"), cwd=w.dir) for _ in range(2)]
    for j in borrowers:
        c.wait_state(j, {"RUNNING"})
    # `logs -f` started during the first attempt follows the job into the next.
    follow = subprocess.Popen([*clusterctl_argv(), "logs", "-f", str(borrowers[0])], env=c.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    claimant = c.submit(*w.args("--team", "b", "--gpus", "2"), cwd=w.dir)
    c.wait_state(claimant, {"RUNNING"}, timeout=60)
    for j in borrowers:
        job = c.wait_state(j, {"PENDING"})
        assert job["preemptions"] == 1 and job["requeues"] == 0
        states = [(h["state"], h["attempt"]) for h in job["history"]]
        assert states == [("PENDING", 0), ("STARTING", 1), ("RUNNING", 1), ("PENDING", 1)]
        assert f"for job {claimant}" in job["history"][-1]["reason"]
        ran = (datetime.fromisoformat(job["history"][-1]["at"])
               - datetime.fromisoformat(job["history"][-2]["at"])).total_seconds()
        assert ran >= 4  # not before its minimum run time (#36)
        assert all(a["ended_at"] for a in job["allocations"])  # GPUs given back
        assert w.lines(j) == ["1 start index=-", "1 checkpoint grace=10"]
    assert all(c.show(j)["state"] == "RUNNING" for j in kept)  # never preempted
    gpus = {(a["node"], a["gpu_index"]) for j in [*kept, claimant]
            for a in c.show(j)["allocations"] if not a["ended_at"]}
    assert len(gpus) == 4  # no GPU held twice

    w.release.touch()
    for j in [*kept, claimant, no_borrow, *borrowers]:
        assert c.wait_done(j)["state"] == "SUCCEEDED", c.show(j)
    for j in borrowers:  # the second attempt found the checkpoint
        assert w.lines(j)[-1] == "2 start index=-" and c.show(j)["attempt"] == 2
    out, err = follow.communicate(timeout=60)
    assert follow.returncode == 0, err
    assert out.splitlines() == ["1 start index=-", "1 checkpoint grace=10",
                                f"--- clusterctl: attempt 2 of job {borrowers[0]} ---",
                                "2 start index=-"], out


def test_dependencies_and_arrays(make_controller: Callable[..., ControllerProcess],
                                 tmp_path: Path) -> None:
    c = make_controller()
    w = Work(tmp_path)
    first = c.submit(*w.args("--env", "EXIT=3"), cwd=w.dir)
    needs_ok = c.submit(*w.args("--after", f"{first}:ok"), cwd=w.dir)
    after_any = c.submit(*w.args("--after", str(first), nap=0.1), cwd=w.dir)
    c.wait_state(first, {"RUNNING"})
    why = eventually("dependency reason", lambda: by_id(c)[needs_ok].get("wait_detail"))
    assert why == f"after job {first} (RUNNING)"
    assert by_id(c)[after_any]["wait_reason"] == "dependency"
    assert f"dependency: after job {first} (RUNNING)" in c.cli("jobs").stdout
    c.settle()  # passes that saw free GPUs, yet neither starts
    assert {by_id(c)[j]["state"] for j in (needs_ok, after_any)} == {"PENDING"}

    w.release.touch()
    assert c.wait_done(first)["state"] == "FAILED"
    broken = c.wait_done(needs_ok)
    assert broken["state"] == "CANCELLED"
    assert broken["reason"] == f"dependency {first} ended FAILED, not SUCCEEDED"
    ran = c.wait_done(after_any)
    assert ran["state"] == "SUCCEEDED"
    assert ran["started_at"] >= c.show(first)["ended_at"]

    r = c.cli("submit", *w.args("--array", "0-3%2", nap=1.0), cwd=w.dir)
    assert r.returncode == 0, r.stderr
    tasks = [int(x) for x in r.stdout.split()]
    assert len(tasks) == 4
    done = [c.wait_done(t) for t in tasks]
    assert all(t["state"] == "SUCCEEDED" and t["array_id"] == tasks[0] for t in done)
    assert sorted(w.lines(t)[0] for t in tasks) == [f"1 start index={i}" for i in range(4)]
    windows = [(datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["ended_at"]))
               for t in done]
    for a, b, d in itertools.combinations(windows, 3):
        assert max(a[0], b[0], d[0]) >= min(a[1], b[1], d[1]), "3 tasks ran at once under %2"

    before = len(c.json("jobs", "--all"))
    for flags in (["--after", "424242"], ["--after", "x:ok"], ["--array", "5-1"],
                  ["--array", "0-3%0"]):
        r = c.cli("submit", *flags, "--", "true")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (flags, r.stderr)
        assert flags[0] in r.stderr
    assert len(c.json("jobs", "--all")) == before


def test_user_gpu_limit_and_estimated_start(make_controller: Callable[..., ControllerProcess],
                                            tmp_path: Path) -> None:
    c = make_controller(user_gpu_limit="3", preempt="false")
    w = Work(tmp_path)
    # The first has a time limit; the others run until released.
    mine = [c.submit(*w.args("--time-limit", "2h"), cwd=w.dir)]
    mine += [c.submit(*w.args(), cwd=w.dir) for _ in range(3)]
    eventually("three running", lambda: [by_id(c)[j]["state"] for j in mine].count("RUNNING") == 3)
    held = next(j for j in mine if by_id(c)[j]["state"] == "PENDING")
    assert eventually("user-limit", lambda: by_id(c)[held].get("wait_reason")) == "user-limit"
    c.settle()
    assert by_id(c)[held]["state"] == "PENDING"  # a GPU is free, yet it is held back

    carol = json.loads(c.cli("admin", "user", "add", "carol", "--team", "nlp",
                             "--json").stdout)["token"]
    r = c.cli("submit", *w.args("--gpus", "2", "--time-limit", "1h"), token=carol, cwd=w.dir)
    assert r.returncode == 0, r.stderr
    big = int(r.stdout)
    job = eventually("resources", lambda: (j := by_id(c)[big]).get("estimated_start") and j)
    assert job["wait_reason"] == "resources"
    # The free GPU and the one the 2h job gives back by its limit: in about two hours.
    wait_h = (datetime.fromisoformat(job["estimated_start"])
              - datetime.fromisoformat(job["submitted_at"])).total_seconds() / 3600
    assert 1.5 < wait_h < 2.5
    table = c.cli("jobs").stdout
    assert "user-limit" in table and "resources" in table and "starts by" in table
    assert "waiting: resources" in c.cli("show", str(big)).stdout
    # A job that must wait for jobs without a time limit gets no made-up date.
    assert c.cli("cancel", str(big)).returncode == 0
    r = c.cli("submit", *w.args("--gpus", "3", "--time-limit", "1h"), token=carol, cwd=w.dir)
    whole = int(r.stdout)
    job = eventually("unknown", lambda: (j := by_id(c)[whole]).get("start_unknown") and j)
    assert job["estimated_start"] is None and job["wait_reason"] == "resources"
    table = c.cli("jobs").stdout
    assert "start unknown" in table and "starts by" not in table
    w.release.touch()
    for j in [*mine, whole]:
        assert c.wait_done(j)["state"] == "SUCCEEDED"


def test_drained_node_takes_no_new_jobs_and_running_ones_finish(
        make_controller: Callable[..., ControllerProcess], tmp_path: Path) -> None:
    c = make_controller()
    w = Work(tmp_path)
    running = c.submit(*w.args(), cwd=w.dir)
    c.wait_state(running, {"RUNNING"})
    r = c.cli("nodes", "drain", "node-a", "--reason", "swap a fan")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"node-a: drained; 1 running job(s) will finish there: {running}"
    node = next(n for n in c.json("nodes") if n["name"] == "node-a")
    assert node["drained"] and node["drain_reason"] == "swap a fan"
    assert "(drained)" in c.cli("nodes").stdout

    queued = c.submit(*w.args(nap=0.1), cwd=w.dir)
    assert eventually("a reason", lambda: by_id(c)[queued].get("wait_reason")) == "resources"
    c.settle()  # 3 GPUs free on the only node, yet nothing new lands there
    assert by_id(c)[queued]["state"] == "PENDING"

    c.kill()  # the drain is in the database: a restarted controller keeps it
    c.start()
    assert next(n for n in c.json("nodes") if n["name"] == "node-a")["drained"]
    assert c.show(running)["state"] == "RUNNING"  # re-attached, still running
    w.release.touch()
    assert c.wait_done(running)["state"] == "SUCCEEDED"
    c.settle()
    assert c.show(queued)["state"] == "PENDING"

    assert c.cli("nodes", "undrain", "node-a").stdout.strip() == "node-a: takes new jobs"
    assert c.wait_done(queued)["state"] == "SUCCEEDED"
    assert not next(n for n in c.json("nodes") if n["name"] == "node-a")["drained"]

    bad = c.cli("nodes", "drain", "no-such-node")
    assert bad.returncode == 2 and "no node named no-such-node" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bob = json.loads(c.cli("admin", "user", "add", "bob", "--team", "t", "--json").stdout)
    r = c.cli("nodes", "drain", "node-a", token=bob["token"])
    assert r.returncode == 1 and "only an admin" in r.stderr
    assert not next(n for n in c.json("nodes") if n["name"] == "node-a")["drained"]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A real scrape of a /metrics endpoint, keyed by sample name and sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    text = http("GET", f"{url}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_controller_metrics_show_the_queue_holders_and_their_cost(
        make_controller: Callable[..., ControllerProcess], tmp_path: Path) -> None:
    c = make_controller(quotas="a=2,b=2")
    bought = (datetime.now(timezone.utc) - timedelta(days=100)).date().isoformat()
    assert c.cli("hardware", "add", "node-a", "--gpus", "4", "--gpu-model", "A100",
                 "--price", "100000", "--purchased", bought, "--life", "36mo",
                 "--resale", "0.2", "--monthly-fees", "730.5").returncode == 0
    w = Work(tmp_path)
    held = c.submit(*w.args("--team", "a", "--gpus", "3", "--name", "big"), cwd=w.dir)
    c.wait_state(held, {"RUNNING"})
    waits = c.submit(*w.args("--team", "b", "--gpus", "2", "--no-preempt"), cwd=w.dir)
    c.cli("nodes", "drain", "node-a")
    url = c.metrics_url
    time.sleep(1.0)  # so that the oldest wait is at least a second
    m = scrape(url)
    assert m[("clusterctl_jobs", (("state", "RUNNING"), ("team", "a")))] == 1
    assert m[("clusterctl_jobs", (("state", "PENDING"), ("team", "b")))] == 1
    assert m[("clusterctl_jobs", (("state", "PENDING"), ("team", "a")))] == 0
    assert m[("clusterctl_queue_pending_gpus", (("team", "b"),))] == 2
    assert m[("clusterctl_queue_oldest_wait_seconds", (("team", "b"),))] >= 1.0
    user = c.show(held)["user"]
    # ids, users and teams only: a job's name is its owner's to see, and /metrics has no token
    assert m[("clusterctl_job_gpus", (("job_id", str(held)), ("node", "node-a"),
                                      ("team", "a"), ("user", user)))] == 3
    assert "big" not in http("GET", f"{url}/metrics", timeout=5).text
    assert http("GET", f"http://127.0.0.1:{c.port}/metrics", timeout=5).status_code == 404
    assert m[("clusterctl_team_gpus", (("team", "a"),))] == 3
    assert m[("clusterctl_team_gpus", (("team", "b"),))] == 0
    assert m[("clusterctl_team_quota_gpus", (("team", "b"),))] == 2
    # By hand: (100,000 x 0.8 / (36 x 730.5) + 730.5 / 730.5) / 4 = 0.8105 $ per GPU-hour.
    rate = (100_000 * 0.8 / (36 * 730.5) + 1.0) / 4
    assert m[("clusterctl_team_cost_dollars_per_hour", (("team", "a"),))] == pytest.approx(
        3 * rate)
    assert m[("clusterctl_node_cost_dollars_per_hour", (("node", "node-a"),))] == pytest.approx(
        4 * rate)
    assert m[("clusterctl_node_gpus", (("node", "node-a"),))] == 4
    assert m[("clusterctl_node_drained", (("node", "node-a"),))] == 1
    assert m[("clusterctl_scheduler_passes_total", ())] >= 1
    w.release.touch()
    c.cli("nodes", "undrain", "node-a")
    assert c.wait_done(waits)["state"] == "SUCCEEDED"
    m = scrape(url)
    assert m[("clusterctl_jobs", (("state", "RUNNING"), ("team", "b")))] == 0
    assert ("clusterctl_queue_pending_gpus", (("team", "b"),)) not in m


def test_a_long_served_job_without_a_limit_is_demoted_for_the_teams_new_one(
        make_controller: Callable[..., ControllerProcess], tmp_path: Path) -> None:
    """#36: attained service live. Past its threshold (here 0.002 GPU-hours: 1.8 s on 4
    GPUs) and the minimum run time, a job without a limit gives its GPUs to its team's new
    job, queues again saying it was demoted, and resumes when they come free."""
    c = make_controller(quotas="a=4", preempt_grace_s="5", preempt_min_run_s="3",
                        demote_after_gpu_h="[0.002]")
    w = Work(tmp_path)
    long = c.submit(*w.args("--team", "a", "--gpus", "4"), cwd=w.dir)
    c.wait_state(long, {"RUNNING"})
    short = c.submit(*w.args("--team", "a", "--gpus", "4"), cwd=w.dir)
    c.wait_state(short, {"RUNNING"}, timeout=60)
    job = c.wait_state(long, {"PENDING"})
    assert job["preemptions"] == 1
    reason = job["history"][-1]["reason"]
    assert "demoted: it has had" in reason and f"job {short} of team a" in reason, reason
    ran = (datetime.fromisoformat(job["history"][-1]["at"])
           - datetime.fromisoformat(job["history"][-2]["at"])).total_seconds()
    assert ran >= 3  # not before its minimum run time
    waits = eventually("its wait", lambda: by_id(c)[long].get("wait_detail"))
    assert "demoted: it has had" in waits and "--time-limit" in waits, waits
    assert "demoted" in c.cli("jobs").stdout
    w.release.touch()
    for j in (short, long):
        assert c.wait_done(j)["state"] == "SUCCEEDED", c.show(j)
    assert w.lines(long)[-1] == "2 start index=-"  # resumed from its checkpoint


def test_a_service_replica_is_never_demoted(
        make_controller: Callable[..., ControllerProcess], tmp_path: Path) -> None:
    """#36: a service's replica runs until stopped: past any threshold, its team's new job
    waits for GPUs rather than demote it (the pass that gives the job its wait decided)."""
    c = make_controller(quotas="a=4", preempt_min_run_s="0", demote_after_gpu_h="[0.0001]")
    w = Work(tmp_path)
    serve_chat(c, w, "a", 4)  # up, so past 0.36 GPU-seconds
    batch = c.submit(*w.args("--team", "a", "--gpus", "4"), cwd=w.dir)
    eventually("its wait", lambda: by_id(c)[batch].get("wait_reason"))
    c.settle()  # passes that saw it, and what they decided is done
    job = by_id(c)[batch]
    assert job["wait_reason"] != "preempting", job
    replicas = [j for j in c.json("jobs") if j["id"] != batch]
    assert replicas and all(j["state"] == "RUNNING" for j in replicas), replicas
    assert all(c.show(j["id"])["preemptions"] == 0 for j in replicas)
    assert c.cli("serve", "stop", "chat").returncode == 0
    w.release.touch()
    assert c.wait_done(batch)["state"] == "SUCCEEDED"
