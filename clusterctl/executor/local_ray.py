"""A single-machine Ray head for ``clusterctl up``, run as ``ray start --head --block``.

A separate process rather than ``ray.init()`` inside the controller, so that restarting the
controller leaves the cluster and its jobs running; SIGTERM to it stops every Ray process it
started. The Ray token lives in the controller's data directory, mode 0600, and goes only to
Ray and the controller.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clusterctl.executor import environment


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now ("": on every address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ensure_token(path: Path) -> Path:
    """Create the Ray auth token file (0600) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path


def ray_env(token_file: Path | str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that turns Ray's token authentication on for a process. Of ``base`` (this
    process's environment by default), only what Ray needs is kept: a Ray node's processes,
    the runners among them, must hold nothing of the admin's (``environment.for_ray``)."""
    env = environment.for_ray(os.environ if base is None else base)
    env["RAY_AUTH_MODE"] = "token"
    if token_file:
        env["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def ray_command() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.exists() else [shutil.which("ray") or "ray"]


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def command_line(pid: int) -> list[str]:
    """A process's argv from ``/proc`` (empty if it is gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM a process that is not our child (one a crashed ``up`` left), SIGKILL its
    process group if it has not exited within ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # it leads its own session (start_new_session)


@dataclass
class LocalRay:
    process: subprocess.Popen[bytes] | None
    """None for a head adopted from a crashed ``up`` (not our child)."""
    address: str
    token_file: Path
    adopted_pid: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else int(self.adopted_pid or 0)

    def stop(self, timeout: float = 60) -> None:
        if self.process is not None:
            stop_process(self.process, timeout)
        elif self.adopted_pid:
            stop_pid(self.adopted_pid, timeout)


def adopt_local_ray(pid: int, address: str, token_file: Path) -> LocalRay | None:
    """The Ray head a crashed ``up`` started, if it still runs and answers: the jobs on it
    keep running and a new controller re-attaches to them."""
    argv = command_line(pid)
    if not any(a.endswith("ray") for a in argv[:2]) or "--head" not in argv:
        return None
    port = int(address.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        if s.connect_ex(("127.0.0.1", port)) != 0:
            return None
    return LocalRay(None, address, token_file, adopted_pid=pid)


def ray_temp_dir(data_dir: Path) -> Path:
    """Ray's temp directory for the nodes ``up`` starts (``--temp-dir``). Ray makes its
    directories there world-writable (sockets, logs, runtime resources): under the shared
    ``/tmp/ray`` any job could rename the raylet's socket and stop every start on the node.
    Here they sit under a directory of this account's alone (0700), which no job of another
    account can enter, and one per data directory, short enough for Ray's socket paths
    (107 bytes). A directory of that name someone else made is refused, never used."""
    parent = Path(tempfile.gettempdir()) / f"clusterctl-ray-{os.geteuid()}"
    try:
        parent.mkdir(mode=0o700)
    except FileExistsError:
        st = parent.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise RuntimeError(f"{parent} is not this account's own directory (made by uid "
                               f"{st.st_uid}); remove it and start again") from None
        if st.st_mode & 0o077:
            parent.chmod(0o700)
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return parent / digest


class PortTaken(RuntimeError):
    pass


QUIET = ("--include-log-monitor", "false")
"""No log monitor on our Ray nodes: it tails every worker's log files to push them to drivers,
and the controller's driver takes none (``log_to_driver=False``: runners keep each job's log
themselves). An idle head spent about 1 % of a core on it, and it grew with every job's
worker."""


def start_local_ray(
    data_dir: Path,
    *,
    num_gpus: int | None,
    node_name: str,
    gpu_model: str | None = None,
    num_cpus: int | None = None,
    port: int | None = None,
) -> LocalRay:
    """Start a Ray head on this machine; ``num_gpus`` None lets Ray detect GPUs through NVML.

    Its ports are picked free just before ``ray start`` binds them, and Ray's own processes
    pick random ports meanwhile, so a port can be taken in between ("Failed to bind"): then it
    starts again on fresh ports, up to three times. ``port`` starts it on that GCS port (a
    head that comes back where its nodes and controller look for it)."""
    ray_dir = data_dir / "ray"
    token_file = ensure_token(ray_dir / "auth_token")
    labels = {"clusterctl-node": node_name}
    if gpu_model:
        labels["clusterctl-gpu-model"] = gpu_model
    options = ["--include-dashboard", "false", "--disable-usage-stats", *QUIET,
               "--temp-dir", str(ray_temp_dir(data_dir)), "--labels", json.dumps(labels)]
    if num_gpus is not None:
        options += ["--num-gpus", str(num_gpus)]
    if num_cpus is not None:
        options += ["--num-cpus", str(num_cpus)]
    log_path = ray_dir / "ray-start.log"
    for attempt in range(3):
        gcs_port = port or free_port()
        cmd = [*ray_command(), "start", "--head", "--block", "--port", str(gcs_port),
               "--ray-client-server-port", str(free_port()),
               "--dashboard-port", str(free_port()), *options]
        log = open(log_path, "ab")  # noqa: SIM115 (owned by the child)
        offset = log.tell()
        proc = subprocess.Popen(cmd, env=ray_env(token_file), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        local = LocalRay(proc, f"127.0.0.1:{gcs_port}", token_file)
        try:
            _wait_for_port(local, gcs_port, log_path, offset)
            return local
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def start_local_worker(data_dir: Path, head: LocalRay, *, num_gpus: int, node_name: str,
                       gpu_model: str | None = None, num_cpus: int | None = None) -> LocalRay:
    """Start a Ray worker node on this machine, joined to ``head`` (a simulated fleet of
    several nodes on one machine: ``up --simulate-gpus 1x2:H100-80GB,1x2:RTX-4090``)."""
    ray_dir = data_dir / "ray"
    labels = {"clusterctl-node": node_name}
    if gpu_model:
        labels["clusterctl-gpu-model"] = gpu_model
    cmd = [*ray_command(), "start", "--address", head.address, "--block",
           "--disable-usage-stats", *QUIET, "--temp-dir", str(ray_temp_dir(data_dir)),
           "--labels", json.dumps(labels), "--num-gpus", str(num_gpus)]
    if num_cpus is not None:
        cmd += ["--num-cpus", str(num_cpus)]
    log = open(ray_dir / f"ray-worker-{node_name}.log", "ab")  # noqa: SIM115 (the child's)
    proc = subprocess.Popen(cmd, env=ray_env(head.token_file), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    return LocalRay(proc, head.address, head.token_file)


def _wait_for_port(local: LocalRay, port: int, log_path: Path, offset: int,
                   timeout_s: float = 120) -> None:
    """Ray's driver gives up on a head that is not listening yet, so wait for its GCS port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if local.process is not None and local.process.poll() is not None:
            text = log_path.read_bytes()[offset:].decode(errors="replace")
            tail = text.strip().splitlines()[-5:]
            if "Failed to bind" in text or "address already in use" in text:
                raise PortTaken("ray start failed: " + " | ".join(tail))
            raise RuntimeError("ray start failed: " + " | ".join(tail))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    local.stop()
    raise RuntimeError(f"ray start did not listen on port {port} within {timeout_s:.0f}s")


class HeadKeeper:
    """Starts ``up``'s own Ray head again, on the same port, when it dies (killed, crashed,
    out of memory): the controller, which keeps serving through the outage, reconnects by
    itself, and the jobs lost with the head are requeued within their retries. A head that
    will not start is tried again every ``retry_s``, saying why."""

    def __init__(self, local: LocalRay, start: Callable[[int], LocalRay],
                 on_restart: Callable[[LocalRay], None], say: Callable[[str], None],
                 check_s: float = 1.0, retry_s: float = 10.0) -> None:
        self.local = local
        self._start, self._on_restart, self._say = start, on_restart, say
        self.check_s, self.retry_s = check_s, retry_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ray-head-keeper", daemon=True)
        self._thread.start()

    def _alive(self) -> bool:
        process = self.local.process
        return process.poll() is None if process is not None else process_alive(self.local.pid)

    def _run(self) -> None:
        port = int(self.local.address.rsplit(":", 1)[1])
        while not self._stop.wait(self.check_s):
            if self._alive():
                continue
            self._say(f"the Ray head (pid {self.local.pid}) is gone; starting it again on "
                      f"port {port}")
            if self.local.process is None:  # adopted: its other processes may still hold ports
                stop_pid(self.local.pid, 10)
            while not self._stop.is_set():
                try:
                    self.local = self._start(port)
                except (RuntimeError, OSError) as e:
                    self._say(f"the Ray head did not start again ({e}); trying again in "
                              f"{self.retry_s:.0f}s")
                    self._stop.wait(self.retry_s)
                    continue
                self._on_restart(self.local)
                self._say(f"the Ray head is back (pid {self.local.pid})")
                break

    def stop(self) -> LocalRay:
        """Stop watching (before an orderly stop of the head); the head as it now is."""
        self._stop.set()
        self._thread.join(timeout=150)
        return self.local
