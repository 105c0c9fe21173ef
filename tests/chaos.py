"""Chaos (#17, item 11): a stream of jobs on a two-worker ``ray.cluster_utils.Cluster`` while
the controller, a runner, an agent, a worker node and the database are killed or cut at
random; then the invariants a user relies on. Shared by ``tests/test_chaos_e2e.py`` (about two
minutes in CI) and ``bench/chaos_soak.py`` (thirty).

Every job appends what its process did to one timeline file: ``B`` when it starts, ``H``
every 0.2 s while it runs, ``E CODE`` as it exits (job, attempt, node and GPUs on each line).
That file is the ground truth the controller's records are checked against.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from harness import Agent, ControllerProcess

JOB = r"""
import os, sys, time
me = " ".join([os.environ["CLUSTERCTL_JOB_ID"], os.environ["CLUSTERCTL_ATTEMPT"],
               os.environ.get("CLUSTERCTL_NODE", "?"), os.environ["CUDA_VISIBLE_DEVICES"]])
def line(kind, extra=""):
    with open(os.environ["CHAOS_TIMELINE"], "a") as f:
        f.write(f"{kind} {me} {time.time():.3f}{extra}\n")
line("B")
end = time.time() + float(sys.argv[1])
while time.time() < end:
    time.sleep(0.2)
    line("H")
code = int(sys.argv[2])
line("E", f" {code}")
sys.exit(code)
"""

KINDS = ("controller", "runner", "agent", "node", "database")
FINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT", "LOST"}
WORKERS = ("gpu-1", "gpu-2")


@dataclass
class Report:
    seed: int
    jobs: int = 0
    states: dict[str, int] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    attempts: int = 0
    samples: int = 0

    def summary(self) -> str:
        kinds: dict[str, int] = defaultdict(int)
        for _, k in self.events:
            kinds[k] += 1
        return (f"seed {self.seed}: {self.jobs} jobs ({self.attempts} attempts), end states "
                f"{dict(sorted(self.states.items()))}, faults {dict(sorted(kinds.items()))}, "
                f"{self.samples} samples, {len(self.violations)} violations")


class Chaos:
    def __init__(self, root: Path, ray_token: Path, db_url: str, direct_db_url: str,
                 cut_db: Callable[[], None] | None, restore_db: Callable[[], None] | None,
                 seed: int | None = None) -> None:
        """``ray_token``: the token file this process's Ray already uses (RAY_AUTH_*)."""
        from ray.cluster_utils import Cluster

        self.root = root
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.job_rng = random.Random(self.seed + 1)
        """The job stream's own (it runs on another thread than the faults)."""
        self.report = Report(self.seed)
        self.direct_db_url = direct_db_url
        self.cut_db, self.restore_db = cut_db, restore_db
        self.run_id = secrets.token_hex(6)
        self.timeline = root / "timeline"
        self.timeline.touch()
        self.work = root / "work"
        self.work.mkdir()
        (self.work / "job.py").write_text(JOB)
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "num_gpus": 0, "labels": {"clusterctl-node": "head"}})
        self.nodes = {name: self._add_node(name) for name in WORKERS}
        self.ctl = ControllerProcess(root / "ctl", self.cluster.address, ray_token, db_url=db_url)
        self.agents: dict[str, Agent] = {}
        self.cancelled: set[int] = set()
        self.submitted: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _add_node(self, name: str) -> Any:
        return self.cluster.add_node(num_cpus=4, num_gpus=4, labels={
            "clusterctl-node": name, "clusterctl-gpu-model": "simulated"})

    # -- the cluster ----------------------------------------------------------------------------

    def start(self) -> None:
        self.ctl.start(timeout=180)
        for name in WORKERS:
            self._start_agent(name)

    def _start_agent(self, name: str) -> None:
        token = self.ctl.cli("admin", "node-token", name).stdout.strip()
        agent = Agent(self.root / f"agent-{name}", name, f"http://127.0.0.1:{self.ctl.port}",
                      token, gpus=4, interval="1s")
        agent.start()
        self.agents[name] = agent

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        with contextlib.suppress(Exception):
            self.ctl.stop()
        self.cluster.shutdown()

    def _api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"http://127.0.0.1:{self.ctl.port}{path}", timeout=30,
                             headers={"Authorization": f"Bearer {self.ctl.token()}"}, **kwargs)

    # -- the stream of jobs ---------------------------------------------------------------------

    def _submit_one(self) -> None:
        rng = self.job_rng
        body = {
            "gpus": rng.choice([1, 1, 2, 2, 3, 4]),
            "command": [sys.executable, "job.py", f"{rng.uniform(0.5, 5):.1f}",
                        "0" if rng.random() < 0.8 else "3"],
            "workdir": str(self.work),
            "retries": rng.choice([0, 1, 2, 3]),
            "env": {"CHAOS_TIMELINE": str(self.timeline), "CHAOS_RUN": self.run_id},
        }
        try:
            r = self._api("POST", "/v1/jobs", json=body)
        except httpx.HTTPError:
            return  # the controller is down; a job it may have accepted is found at the end
        if r.status_code == 201:
            job = int(r.json()["id"])
            self.submitted.add(job)
            if rng.random() < 0.15:
                delay = rng.uniform(0.2, 4)
                threading.Timer(delay, self._cancel, args=(job,)).start()

    def _cancel(self, job: int) -> None:
        with self._lock:
            self.cancelled.add(job)  # asked for: it may take effect even if the answer is lost
        for _ in range(20):
            try:
                if self._api("POST", f"/v1/jobs/{job}/cancel").status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)

    def _live(self) -> int:
        try:
            return sum(1 for j in self._api("GET", "/v1/jobs").json()
                       if j["state"] not in FINAL)
        except (httpx.HTTPError, ValueError, TypeError):
            return 0

    # -- the faults -----------------------------------------------------------------------------

    def _fault(self, kind: str) -> None:
        self.report.events.append((time.time(), kind))
        if kind == "controller":
            self.ctl.kill()
            time.sleep(self.rng.uniform(0.5, 3))
            self.ctl.start(timeout=180)
        elif kind == "runner":
            pid = self._a_runner()
            if pid:
                os.kill(pid, signal.SIGKILL)
        elif kind == "agent":
            name = self.rng.choice(WORKERS)
            self.agents[name].kill()
            time.sleep(self.rng.uniform(0.5, 3))
            self.agents[name].start()
        elif kind == "node":
            name = self.rng.choice(WORKERS)
            self.cluster.remove_node(self.nodes[name], allow_graceful=False)
            time.sleep(self.rng.uniform(2, 5))
            self.nodes[name] = self._add_node(name)
        elif kind == "database" and self.cut_db and self.restore_db:
            self.cut_db()
            time.sleep(self.rng.uniform(3, 8))
            self.restore_db()

    def _a_runner(self) -> int | None:
        """The Ray worker running some job's runner: the job process's grandparent."""
        jobs = _job_processes(self.run_id)
        if not jobs:
            return None
        shim = _parent(self.rng.choice(jobs))
        return _parent(shim) if shim else None

    def run(self, duration_s: float, fault_every_s: tuple[float, float] = (6, 12),
            max_live: int = 12, min_jobs: int = 0) -> Report:
        """Jobs and faults for ``duration_s``, and on until every kind of fault has happened at
        least once and ``min_jobs`` jobs were accepted (a slow or loaded machine recovers and
        submits slowly; up to 180 s more). Faults run on this
        thread (Ray's ``Cluster.add_node`` must), submissions on another; an error of the
        harness itself is a violation, never a silent stop."""
        kinds = [k for k in KINDS if k != "database" or self.cut_db]
        plan: list[str] = []

        def submit() -> None:
            try:
                while not self._stop.is_set():
                    if self._live() < max_live:
                        self._submit_one()
                    self._stop.wait(0.5)
            except Exception as e:  # reported: the run fails
                self.report.violations.append(f"the job stream failed: {e!r}")

        stream = threading.Thread(target=submit, name="chaos-jobs", daemon=True)
        stream.start()
        deadline = time.monotonic() + duration_s
        try:
            while True:
                every_kind = {k for _, k in self.report.events} >= set(kinds)
                enough = every_kind and len(self.submitted) >= min_jobs
                now = time.monotonic()
                if now >= deadline + 180 or (now >= deadline and enough):
                    break
                time.sleep(self.rng.uniform(*fault_every_s))
                if not plan:
                    plan.extend(self.rng.sample(kinds, len(kinds)))  # each kind in turn
                self._fault(plan.pop())
        finally:
            self._stop.set()
            stream.join(timeout=60)
        return self.report

    # -- the invariants -------------------------------------------------------------------------

    def settle(self, timeout_s: float = 240) -> list[dict[str, Any]]:
        """Every job of the run, once all have ended (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = self._api("GET", "/v1/jobs", params={"all": "true", "limit": 100000}).json()
            if all(j["state"] in FINAL for j in jobs) or time.monotonic() > deadline:
                return [self._api("GET", f"/v1/jobs/{j['id']}").json() for j in jobs]
            time.sleep(1)

    def check(self, jobs: list[dict[str, Any]]) -> Report:
        r = self.report
        r.jobs = len(jobs)
        v = r.violations
        timeline = _read_timeline(self.timeline)
        r.attempts = len({(j, a) for (j, a, _) in timeline.starts})
        faults_at = [t for t, k in r.events if k in ("node", "runner")]
        for j in jobs:
            jid, state = j["id"], j["state"]
            r.states[state] = r.states.get(state, 0) + 1
            code = int(j["command"][-1])
            final = (jid, j["attempt"])
            end = timeline.ends.get(final)
            terminal = [h for h in j["history"] if h["state"] in FINAL - {"LOST"}]
            if state not in FINAL:
                v.append(f"job {jid} never ended: {state} ({j['reason']})")
                continue
            if len(terminal) > 1:
                v.append(f"job {jid} ended more than once: {[h['state'] for h in terminal]}")
            for (sj, sa), n in timeline.start_counts.items():
                if sj == jid and n > 1:
                    v.append(f"job {jid} attempt {sa} started {n} times")
            if state == "SUCCEEDED" and (code != 0 or end is None or end[0] != 0):
                v.append(f"job {jid} SUCCEEDED but its process did {end}")
            elif state == "FAILED" and not (end is not None and end[0] == code == j["exit_code"]):
                v.append(f"job {jid} FAILED ({j['reason']}) but its process did {end}")
            elif state == "CANCELLED" and jid not in self.cancelled:
                v.append(f"job {jid} CANCELLED though nobody cancelled it ({j['reason']})")
            elif state == "LOST":
                if j["requeues"] < j["retries"]:
                    v.append(f"job {jid} LOST with retries left ({j['reason']})")
                if end is not None and not any(abs(end[1] - t) < 10 for t in faults_at):
                    v.append(f"job {jid} LOST though its process ended ({end}) with no fault "
                             "near")
            elif state == "TIMEOUT":
                v.append(f"job {jid} TIMEOUT without a time limit")
            if end is not None and state not in ("SUCCEEDED", "FAILED", "LOST") \
                    and jid not in self.cancelled:
                v.append(f"job {jid} is {state} though its process exited {end[0]}")
            for a in j["allocations"]:
                if a["ended_at"] is None:
                    v.append(f"job {jid} ended with an open allocation {a}")
        v.extend(_overlaps_in_allocations(jobs))
        v.extend(timeline.overlaps())
        time.sleep(5)
        left = _run_processes(self.run_id)
        if left:
            v.append(f"processes of jobs left running: {left}")
        v.extend(self._samples_contiguous())
        return r

    def _samples_contiguous(self) -> list[str]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.direct_db_url)
        try:
            with engine.connect() as c:
                rows = c.execute(text(
                    "SELECT node, gpu_uuid, boot_id, min(seq), max(seq), count(*), "
                    "count(DISTINCT seq) FROM gpu_sample GROUP BY node, gpu_uuid, boot_id"
                )).all()
        finally:
            engine.dispose()
        out = []
        for node, uuid, _boot, lo, hi, n, distinct in rows:
            self.report.samples += int(n)
            if n != distinct:
                out.append(f"duplicate samples of {node} {uuid}: {n - distinct}")
            if hi - lo + 1 != n:
                out.append(f"samples of {node} {uuid} lost: seq {lo}..{hi} holds {n}")
        return out


@dataclass
class Timeline:
    starts: dict[tuple[int, int, str], float]
    start_counts: dict[tuple[int, int], int]
    ends: dict[tuple[int, int], tuple[int, float]]
    spans: dict[tuple[str, str], list[tuple[float, float, int, int]]]
    """(node, GPU) → (first seen, last seen, job, attempt) of every attempt that used it."""

    def overlaps(self) -> list[str]:
        out = []
        for (node, gpu), spans in self.spans.items():
            for (a1, aj, aa), (b0, bj, ba) in _overlapping(spans):
                out.append(f"GPU {gpu} of {node} held by job {aj} attempt {aa} until "
                           f"{a1:.2f} and by job {bj} attempt {ba} from {b0:.2f}")
        return out


def _overlapping(spans: list[tuple[Any, Any, int, int]]
                 ) -> list[tuple[tuple[Any, int, int], tuple[Any, int, int]]]:
    """Pairs of (end, job, attempt) and (start, job, attempt) where the second began before
    the first (the one ending last among those before it) ended."""
    out = []
    latest: tuple[Any, int, int] | None = None
    for start, end, job, attempt in sorted(spans):
        if latest is not None and start < latest[0]:
            out.append((latest, (start, job, attempt)))
        if latest is None or end > latest[0]:
            latest = (end, job, attempt)
    return out


def _read_timeline(path: Path) -> Timeline:
    starts: dict[tuple[int, int, str], float] = {}
    counts: dict[tuple[int, int], int] = defaultdict(int)
    ends: dict[tuple[int, int], tuple[int, float]] = {}
    seen: dict[tuple[int, int, str, str], list[float]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue  # a line cut short by a kill
        kind, job, attempt, node, gpus, t = parts[:6]
        key = (int(job), int(attempt))
        if kind == "B":
            starts[(*key, node)] = float(t)
            counts[key] += 1
        if kind == "E" and len(parts) == 7:
            ends[key] = (int(parts[6]), float(t))
        for gpu in gpus.split(","):
            span = seen.setdefault((*key, node, gpu), [float(t), float(t)])
            span[0], span[1] = min(span[0], float(t)), max(span[1], float(t))
    spans: dict[tuple[str, str], list[tuple[float, float, int, int]]] = defaultdict(list)
    for (job, attempt, node, gpu), (t0, t1) in seen.items():
        spans[(node, gpu)].append((t0, t1, job, attempt))
    return Timeline(starts, dict(counts), ends, dict(spans))


def _overlaps_in_allocations(jobs: list[dict[str, Any]]) -> list[str]:
    held: dict[tuple[str, int], list[tuple[datetime, datetime, int, int]]] = defaultdict(list)
    for j in jobs:
        for a in j["allocations"]:
            if a["ended_at"] is None:
                continue
            held[(a["node_id"], a["gpu_index"])].append((
                datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(a["ended_at"]),
                j["id"], a["attempt"]))
    out = []
    for (node_id, gpu), spans in held.items():
        for (a1, aj, aa), (b0, bj, ba) in _overlapping(spans):
            out.append(f"allocations overlap on GPU {gpu} of Ray node {node_id[:8]}: job "
                       f"{aj} attempt {aa} until {a1}, job {bj} attempt {ba} from {b0}")
    return out


def _job_processes(run_id: str) -> list[int]:
    """The jobs' own processes (children of a launch shim, which carries the same env)."""
    found = _run_processes(run_id)
    return [p for p in found if _parent(p) in found]


def _run_processes(run_id: str) -> list[int]:
    """Every process of the run's jobs: shims, jobs and whatever they started."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                if f"CHAOS_RUN={run_id}".encode() in f.read().split(b"\0"):
                    found.append(int(p))
        except OSError:
            continue
    return found


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
