"""Drives the real `clusterctl` command: a controller started with `clusterctl up` as a
subprocess, and CLI calls as subprocesses with their own config file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from ports import free_port

from clusterctl.executor.local_ray import stop_process
from clusterctl.states import ENDED

CLUSTERCTL = Path(sys.executable).with_name("clusterctl")
FINAL = {s.value for s in ENDED}


def clusterctl_argv() -> list[str]:
    return [str(CLUSTERCTL)] if CLUSTERCTL.exists() else [sys.executable, "-m", "clusterctl"]


def log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) \
        if path.exists() else ""


_CLIENTS: dict[str, httpx.Client] = {}


def http(method: str, url: str, verify: Any = True, **kwargs: Any) -> httpx.Response:
    """One request through a kept client (one per CA): a new httpx client costs about 20 ms
    of CPU (it builds an SSL context), a request on a kept one about 1 ms, and the suite's
    tests poll their controllers thousands of times. A GET that meets a kept connection the
    server has just closed is sent once more."""
    client = _CLIENTS.get(str(verify))
    if client is None:
        client = _CLIENTS[str(verify)] = httpx.Client(verify=verify, timeout=30)
    try:
        return client.request(method, url, **kwargs)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        if method != "GET":
            raise
        return client.request(method, url, **kwargs)


def until(get: Any, ok: Any, timeout: float = 60, what: str = "") -> Any:
    """``get()`` again every 0.3 s until ``ok`` of it: the value; a failed assertion naming
    ``what`` and the last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {value}"
        time.sleep(0.3)


def _ours(answer: httpx.Response) -> bool:
    """A controller's /healthz says its status in JSON: not any server that took the port
    (another worker's Prometheus listener answers every path with 200)."""
    if not answer.url.path.endswith("/healthz"):
        return True
    try:
        return "status" in answer.json()
    except ValueError:
        return False


def start_serving(argv: list[str], env: dict[str, str], log_path: Path, url: str,
                  timeout: float, ready: Any = lambda: True,
                  verify: Any = True, healthy: bool = True) -> subprocess.Popen[bytes]:
    """Start a server process logging to ``log_path``; return once ``url`` answers (with a
    2xx unless not ``healthy``: any answer) and ``ready()`` holds, or raise with the log's
    tail."""
    log = open(log_path, "ab")  # noqa: SIM115 (owned by the child)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited:\n" + log_tail(log_path))
        try:
            answer = http("GET", url, verify, timeout=1)
            if (answer.is_success or not healthy) and _ours(answer) and ready():
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{argv[0]} did not come up:\n" + log_tail(log_path))


class ControllerProcess:
    """One installation: its own database, data directory, config file and API port."""

    def __init__(self, root: Path, ray_address: str, ray_token_file: Path,
                 db_url: str | None = None, kill_grace: str = "2s",
                 run_as_submitter: bool = False) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()
        self.data_dir = root / "data"
        self.db_url = db_url or f"sqlite:///{root / 'clusterctl.db'}"
        self.env = {
            **os.environ,
            "CLUSTERCTL_CONFIG": str(root / "config.toml"),
            "CLUSTERCTL_RAY_TOKEN_FILE": str(ray_token_file),
            "CLUSTERCTL_METRICS_PORT": str(self.metrics_port),
            "PYTHONUNBUFFERED": "1",
            # Most tests' jobs write into the test's own (root-only) directories as the account
            # that runs Ray; tests/test_job_accounts_e2e.py runs them as their submitters.
            "CLUSTERCTL_RUN_AS_SUBMITTER": "true" if run_as_submitter else "false",
        }
        for key in ("CLUSTERCTL_TOKEN", "CLUSTERCTL_URL", "RAY_ADDRESS"):
            self.env.pop(key, None)
        self.up_args = ["up", "--ray-address", ray_address, "--port", str(self.port),
                        "--data-dir", str(self.data_dir), "--db", self.db_url,
                        "--kill-grace", kill_grace]
        self.proc: subprocess.Popen[bytes] | None = None
        self.cwd = root
        """Where CLI calls run unless told (a submit ships it as the job's directory)."""
        self.scheme = "http"
        self.verify: Any = True
        """How the API is reached (a TLS test serves https, trusted through its own CA)."""

    def start(self, timeout: float = 90, healthy: bool = True) -> None:
        """Start ``up``; return once /healthz answers (200 unless not ``healthy``)."""
        for attempt in range(3):
            try:
                self.proc = start_serving(
                    clusterctl_argv() + self.up_args, self.env, self.root / "controller.log",
                    f"{self.scheme}://127.0.0.1:{self.port}/healthz", timeout,
                    ready=lambda: (self.root / "config.toml").exists(), verify=self.verify,
                    healthy=healthy)
                return
            except RuntimeError as e:
                # free_port() cannot reserve the port: a process Ray spawned meanwhile may
                # have taken it. Start again on another (`up` rewrites the CLI config's URL).
                if "address already in use" not in str(e) or attempt == 2:
                    raise
                self.port = free_port()
                self.up_args[self.up_args.index("--port") + 1] = str(self.port)

    def log_tail(self) -> str:
        return log_tail(self.root / "controller.log")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def end_live_jobs(self, timeout: float = 30) -> None:
        """Cancel every job not yet ended and wait for them: a clean slate for the next test
        on a controller that tests of one module share."""
        def live() -> list[dict[str, Any]]:
            r = self.api("GET", "/v1/jobs?all=true")
            assert r.status_code == 200, r.text
            return [j for j in r.json() if j["state"] not in FINAL]

        # Services first: a running service starts its cancelled replicas again.
        for service in self.api("GET", "/v1/services").json():
            self.api("POST", f"/v1/services/{service['name']}/stop")
        for job in live():
            self.cli("cancel", str(job["id"]))
        deadline = time.monotonic() + timeout
        while live() and time.monotonic() < deadline:
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.end_live_jobs()
        finally:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- the CLI ------------------------------------------------------------------------------

    def cli(self, *args: str, token: str | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if token is not None:
            env["CLUSTERCTL_TOKEN"] = token
        return subprocess.run(clusterctl_argv() + list(args), env=env, cwd=cwd or self.cwd,
                              capture_output=True, text=True, timeout=timeout)

    def json(self, *args: str, **kwargs: Any) -> Any:
        r = self.cli(*args, "--json", **kwargs)
        assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stderr}"
        return json.loads(r.stdout)

    def submit(self, *args: str, cwd: Path | None = None) -> int:
        r = self.cli("submit", *args, cwd=cwd)
        assert r.returncode == 0, r.stderr
        return int(r.stdout.strip())

    def show(self, job_id: int) -> dict[str, Any]:
        """The job as ``show --json`` prints it: the API's answer, read over HTTP. Tests poll
        this in loops, and a CLI process per poll (half a second of CPU each) was most of
        what the suite spent waiting; the CLI's own ``show`` has tests of its own."""
        r = self.api("GET", f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def wait_state(self, job_id: int, states: set[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.show(job_id)
            if job["state"] in states:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {job['state']}, not {states}\n"
                                     + self.log_tail())
            time.sleep(0.25)

    def wait_done(self, job_id: int, timeout: float = 120) -> dict[str, Any]:
        return self.wait_state(job_id, FINAL, timeout)

    def node_token(self, node: str = "node-a") -> str:
        """A new agent token for ``node`` (``admin node-token``)."""
        r = self.cli("admin", "node-token", node)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    @property
    def metrics_url(self) -> str:
        """The controller's Prometheus listener (its own port, not the API's)."""
        return f"http://127.0.0.1:{self.metrics_port}"

    def token(self) -> str:
        """The admin token `up` wrote to this installation's CLI config."""
        for line in (self.root / "config.toml").read_text().splitlines():
            if line.startswith("token"):
                return line.split("=", 1)[1].strip().strip('"')
        raise AssertionError("no token in the config")

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A direct HTTP call as the admin (faster than a CLI process, for races)."""
        return http(method, f"{self.scheme}://127.0.0.1:{self.port}{path}", self.verify,
                    headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)

    def passes(self) -> int:
        """Scheduler passes the controller has completed (from its /metrics)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = http("GET", f"{self.metrics_url}/metrics", timeout=5).text
        return next(int(s.value) for fam in text_string_to_metric_families(text)
                    for s in fam.samples if s.name == "clusterctl_scheduler_passes_total")

    def settle(self, passes: int = 2, timeout: float = 30) -> None:
        """Wait until the scheduler has completed ``passes`` more passes: one that began after
        this call has seen everything done before it, so "still not started" is then a fact
        about the scheduler, not about how long we slept."""
        target = self.passes() + passes
        deadline = time.monotonic() + timeout
        while self.passes() < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {passes} scheduler passes within {timeout}s\n"
                                     + self.log_tail())
            time.sleep(0.05)


CLUSTERCTL_AGENT = Path(sys.executable).with_name("clusterctl-agent")


class Agent:
    """The real `clusterctl-agent` command for one node, shipping to a controller."""

    def __init__(self, root: Path, node: str, controller_url: str, token: str,
                 gpus: int = 4, interval: str = "1s", extra: tuple[str, ...] = ()) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.argv = [str(CLUSTERCTL_AGENT), "--node", node, "--controller", controller_url,
                     "--simulate-gpus", str(gpus), "--interval", interval,
                     "--port", str(self.port), "--spool", str(root / "spool.db"), *extra]
        self.env = {**os.environ, "CLUSTERCTL_AGENT_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        self.proc = start_serving(self.argv, self.env, self.root / "agent.log",
                                  f"http://127.0.0.1:{self.port}/metrics", timeout)

    def log_tail(self) -> str:
        return log_tail(self.root / "agent.log")

    def metrics(self) -> dict[str, float]:
        """The agent's own (unlabelled) metrics from a real scrape of /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        text = http("GET", f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return {s.name: s.value for fam in text_string_to_metric_families(text)
                for s in fam.samples if not s.labels}

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 20)
