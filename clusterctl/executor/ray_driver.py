"""The Ray driver in a process of its own, so that losing the Ray head costs the controller
nothing but its view of the cluster.

A driver whose head dies blocks in its next call to the head and, a minute later, aborts the
whole process (Ray's "unexpected system state"): inside the controller that would take the API
down with it. Here the controller's :class:`RayDriver` sends each executor call to a child
process (``python -m clusterctl.executor.ray_driver FD``) that holds the :class:`RayExecutor`,
and waits for the answer with a deadline. A call that misses its deadline, or a child that
died, means Ray is unavailable: the child is killed, :class:`RayUnavailable` says why, and the
next call after ``retry_s`` starts a new child and connects again. The runners are named, so a
new child finds those that survived (a slow head, not a dead one) and the attempts lost with
the head are reported LOST.

The parent never imports Ray. Launches are known to both sides by (job id, attempt): the
child keeps the Ray handles, the parent the plain :class:`Launch` that the scheduler reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from clusterctl.executor.types import (
    Launch,
    LaunchSpec,
    NodeInfo,
    Outcome,
    Phase,
    Progress,
    RayUnavailable,
    Started,
)

log = logging.getLogger(__name__)

Key = tuple[int, int]

LOST_WITH_HEAD = "runner gone: lost with the Ray head or its node"
RESTARTED_BEFORE_START = "the Ray driver restarted before the job started"


def _refused(address: str) -> str | None:
    """Why nothing answers at the head's address (its GCS port), or None when it listens."""
    host, _, port = address.rpartition(":")
    if not (port.isascii() and port.isdigit()) or "/" in host:
        return None  # "auto", a ray:// URL: Ray finds it, not us
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return None
    except OSError as e:
        return f"nothing answers at the Ray head's address {address} ({e.__class__.__name__})"


class RayDriver:
    """Implements ``types.Executor`` by calls to the driver process, each with a deadline."""

    def __init__(self, address: str, namespace: str, run_root: str | None = None, *,
                 call_timeout_s: float = 10.0, connect_timeout_s: float = 30.0,
                 retry_s: float = 5.0) -> None:
        self.address = address
        self.namespace = namespace
        self.run_root = run_root
        self.call_timeout_s = call_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry_s = retry_s
        """After a failure, the least time before the next connection attempt."""
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._failed_at = -1e18
        self.down: str | None = None
        """Why Ray is unavailable, or None while the driver answers."""
        self.on_change: Callable[[], None] | None = None
        """Called when the child sees a rank start or end (the scheduler's wake-up): a job's
        end is acted on at once, not at the next poll."""
        self.down_since: float | None = None

    # -- the child process --------------------------------------------------------------------

    def connect(self, timeout_s: float | None = None) -> None:
        """Connect now, waiting up to ``timeout_s`` (default ``connect_timeout_s``) for the
        driver process to import Ray and join the head: a controller's first connect gives it
        all its start-up wait, since on a loaded machine that alone can take over 30 s, and a
        driver killed at the deadline would only start over from the import."""
        with self._lock:
            self._ensure(force=True, timeout_s=timeout_s)

    def _ensure(self, force: bool = False, timeout_s: float | None = None) -> Connection:
        if self._conn is not None:
            return self._conn
        if not force and time.monotonic() - self._failed_at < self.retry_s:
            raise RayUnavailable(self.down or "not connected")
        refused = _refused(self.address)
        if refused:  # no driver process to start (and wait a deadline for) against nothing
            raise self._fail(refused)
        parent, child = socket.socketpair()
        events, events_child = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "clusterctl.executor.ray_driver", str(child.fileno()),
             self.address, self.namespace, self.run_root or "", str(events_child.fileno())],
            pass_fds=(child.fileno(), events_child.fileno()), stdin=subprocess.DEVNULL,
            env=dict(os.environ))
        child.close()
        events_child.close()
        threading.Thread(target=self._relay_changes, args=(events,), daemon=True,
                         name="ray-driver-changes").start()
        self._conn = Connection(parent.detach())
        try:
            self._roundtrip("connect", (), self.connect_timeout_s if timeout_s is None
                            else timeout_s)
        except RuntimeError as e:  # an error other than "no head there": still not connected
            raise self._fail(f"cannot connect to Ray at {self.address}: {e}") from e
        return self._conn

    def _relay_changes(self, events: socket.socket) -> None:
        """Until the child goes (its end of the socket closes), each change it announces
        wakes whoever listens."""
        with events:
            while events.recv(64):
                if self.on_change is not None:
                    self.on_change()

    def _fail(self, why: str) -> RayUnavailable:
        """Kill the child (its Ray handles go with it) and remember why."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait()
            self._process = None
        self._failed_at = time.monotonic()
        if self.down is None:
            self.down_since = time.time()
            log.error("Ray unavailable: %s; the controller keeps serving and reconnects", why)
        self.down = why
        return RayUnavailable(why)

    def _roundtrip(self, method: str, args: tuple[Any, ...], timeout: float) -> Any:
        conn = self._conn
        assert conn is not None
        try:
            conn.send((method, args))
            if not conn.poll(timeout):
                raise self._fail(f"the Ray head at {self.address} did not answer {method} "
                                 f"within {timeout:.0f}s")
            status, value = conn.recv()
        except (EOFError, OSError) as e:
            code = self._process.poll() if self._process is not None else None
            raise self._fail(f"the Ray driver exited ({code if code is not None else e})"
                             ) from e
        if status == "unavailable":
            raise self._fail(str(value))
        if self.down is not None:
            log.warning("Ray is available again (down since %s)",
                        time.strftime("%H:%M:%S", time.localtime(self.down_since or 0)))
            self.down = self.down_since = None
        if status == "error":
            raise RuntimeError(value)
        return value

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        with self._lock:
            self._ensure()
            return self._roundtrip(method, args, timeout or self.call_timeout_s)

    def shutdown(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            with contextlib.suppress(RayUnavailable, RuntimeError):
                self._roundtrip("shutdown", (), 10)
            process = self._process
            self._conn.close()
            self._conn = None
            self._process = None
            if process is not None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    # -- the executor's calls -----------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        return list(self._call("nodes"))

    def launch(self, spec: LaunchSpec, node_ids: list[str], package: bytes | None) -> Launch:
        self._call("launch", spec, node_ids, package, timeout=self.call_timeout_s * 3)
        return Launch(spec.job_id, spec.attempt, len(node_ids), [])

    def reattach(self, job_id: int, attempt: int, ranks: int) -> Launch | None:
        found, started = self._call("reattach", job_id, attempt, ranks,
                                    timeout=self.call_timeout_s * 3)
        if not found:
            return None
        return Launch(job_id, attempt, ranks, [], started=started)

    def poll(self, launch: Launch) -> Progress:
        progress, started, outcomes, terminating = self._call(
            "poll", launch.job_id, launch.attempt, launch.ranks, launch.started is not None,
            timeout=self.call_timeout_s * 2)
        if started is not None:  # a runner lost with the head answers nothing: keep ours
            launch.started = started
        launch.outcomes.update(outcomes)
        launch.terminating = launch.terminating or terminating
        return progress  # type: ignore[no-any-return]

    def terminate(self, launch: Launch, grace_s: float | None) -> None:
        launch.terminating = True
        self._call("terminate", launch.job_id, launch.attempt, launch.ranks, grace_s)

    def withdraw(self, launch: Launch, grace_s: float) -> bool:
        gone: bool = self._call("withdraw", launch.job_id, launch.attempt, launch.ranks,
                                grace_s)
        launch.terminating = launch.terminating or not gone
        return gone

    def read_log(self, launch: Launch, rank: int, offset: int) -> bytes | None:
        return self._call("read_log", launch.job_id, launch.attempt, launch.ranks, rank,  # type: ignore[no-any-return]
                          offset, timeout=self.call_timeout_s * 2)

    def release(self, job_id: int, attempt: int, ranks: int) -> None:
        self._call("release", job_id, attempt, ranks, timeout=self.call_timeout_s * 3)

    def runner_names(self) -> list[tuple[int, int, int]]:
        return list(self._call("runner_names"))


# -- the child's side ---------------------------------------------------------------------------


class _Served:
    """The calls the child answers, on the :class:`RayExecutor` and the launches it holds."""

    def __init__(self, address: str, namespace: str, run_root: str | None) -> None:
        from clusterctl.executor.ray_executor import RayExecutor

        self.executor = RayExecutor(address, namespace, run_root)
        self.launches: dict[Key, Launch] = {}

    def connect(self) -> None:
        self.executor.connect()

    def nodes(self) -> list[NodeInfo]:
        return self.executor.nodes()

    def launch(self, spec: LaunchSpec, node_ids: list[str], package: bytes | None) -> None:
        self.launches[(spec.job_id, spec.attempt)] = self.executor.launch(spec, node_ids,
                                                                          package)

    def reattach(self, job_id: int, attempt: int, ranks: int
                 ) -> tuple[bool, list[Started] | None]:
        launch = self.executor.reattach(job_id, attempt, ranks)
        if launch is None:
            return False, None
        self.launches[(job_id, attempt)] = launch
        return True, launch.started

    def _held(self, job_id: int, attempt: int, ranks: int) -> Launch | None:
        """The launch, found again by name when this child did not start it (a new child)."""
        launch = self.launches.get((job_id, attempt))
        if launch is None:
            launch = self.executor.reattach(job_id, attempt, ranks)
            if launch is not None:
                self.launches[(job_id, attempt)] = launch
        return launch

    def poll(self, job_id: int, attempt: int, ranks: int, seen_started: bool
             ) -> tuple[Progress, list[Started] | None, dict[int, Outcome], bool]:
        fresh = (job_id, attempt) not in self.launches
        launch = self._held(job_id, attempt, ranks)
        if launch is None:
            return Progress(Phase.LOST, LOST_WITH_HEAD), None, {}, False
        if fresh and launch.started is None:
            # Its start call died with the previous driver: nothing of the job runs.
            self.release(job_id, attempt, ranks)
            return Progress(Phase.LOST, RESTARTED_BEFORE_START), None, {}, False
        if fresh and not seen_started:
            progress = Progress(Phase.STARTED)
        else:
            progress = self.executor.poll(launch)
        return progress, launch.started, dict(launch.outcomes), launch.terminating

    def terminate(self, job_id: int, attempt: int, ranks: int, grace_s: float | None) -> None:
        launch = self._held(job_id, attempt, ranks)
        if launch is not None:
            self.executor.terminate(launch, grace_s)

    def withdraw(self, job_id: int, attempt: int, ranks: int, grace_s: float) -> bool:
        launch = self.launches.get((job_id, attempt))
        # A new child: the start call died with the previous driver, and its poll releases it.
        return self.executor.withdraw(launch, grace_s) if launch is not None else True

    def read_log(self, job_id: int, attempt: int, ranks: int, rank: int, offset: int
                 ) -> bytes | None:
        launch = self._held(job_id, attempt, ranks)
        return self.executor.read_log(launch, rank, offset) if launch is not None else None

    def release(self, job_id: int, attempt: int, ranks: int) -> None:
        self.launches.pop((job_id, attempt), None)
        self.executor.release(job_id, attempt, ranks)

    def runner_names(self) -> list[tuple[int, int, int]]:
        return self.executor.runner_names()

    def shutdown(self) -> None:
        self.executor.shutdown()

    def announce_changes(self, events: socket.socket) -> None:
        """Tell the parent, on ``events``, each time a rank starts or ends: a thread waits on
        what the launches wait for (their start and end calls) and sends a byte for each
        that comes in."""
        import ray

        told: set[Any] = set()
        while True:
            refs = []
            for launch in list(self.launches.values()):
                if launch.started is None:
                    refs += launch.start_refs or []
                elif launch.wait_refs is not None:
                    refs += [r for i, r in enumerate(launch.wait_refs)
                             if i not in launch.outcomes]
            told &= set(refs)
            waiting = [r for r in refs if r not in told]
            if not waiting:
                time.sleep(0.1)
                continue
            try:
                ready, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
            except Exception:  # Ray unavailable: the parent finds out by its own calls
                time.sleep(1.0)
                continue
            if ready:
                told.update(ready)
                try:
                    events.send(b"!")
                except OSError:
                    return


def serve(conn: Connection, served: _Served) -> None:
    """Answer calls until the parent closes the connection or asks to shut down."""
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            value = getattr(served, method)(*args)
        except ConnectionError as e:  # ray.init: no head at that address
            conn.send(("unavailable", f"cannot connect to Ray at {served.executor.address}: "
                                      f"{e}"))
            continue
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}"))
            continue
        conn.send(("ok", value))
        if method == "shutdown":
            return


def main(argv: list[str]) -> None:
    fd, address, namespace, run_root, events_fd = argv
    from clusterctl.executor.launch import PR_SET_PDEATHSIG, prctl

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the controller's death is ours
    if os.getppid() == 1:
        return
    conn = Connection(int(fd))
    served = _Served(address, namespace, run_root or None)
    events = socket.socket(fileno=int(events_fd))
    threading.Thread(target=served.announce_changes, args=(events,), daemon=True,
                     name="announce-changes").start()
    serve(conn, served)


if __name__ == "__main__":
    main(sys.argv[1:])
