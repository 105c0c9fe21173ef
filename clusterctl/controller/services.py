"""Model services, live: what the endpoint measures, which replicas are ready, and the keeper
that holds each service at the replicas its load asks for.

A replica is a job (``Job.service_id``): the keeper submits one when a service has fewer than it
wants (a replica that ended, however, is one fewer: it is started again, after a backoff when
replicas keep failing), and cancels the extra ones when it wants fewer (pending first, then
those not ready, then the newest). A running replica is ready once its health path answers 200
on the port it was given (``Started.port``); the endpoint (``api/service_endpoint.py``)
sends requests to ready replicas only, the one with the fewest outstanding first.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from clusterctl.controller.background import Periodic
from clusterctl.executor.types import Started
from clusterctl.serving.autoscale import DOWN_AFTER_S, Load, Shape, decide
from clusterctl.serving.request import ServiceRequest
from clusterctl.states import JobState
from clusterctl.store import Job, JobStore, NewJob, Service, ServiceStore, Traffic

WINDOW_S = 10.0
"""Requests a second are counted over this window."""
LATENCIES_KEPT = 2048
"""Latencies kept per service for its percentiles (the most recent)."""
HEALTH_TIMEOUT_S = 0.5
SAVE_EVERY_S = 2.0
"""How often the counts go to the database: a controller killed loses at most these."""
BACKOFF_MAX_S = 60.0


@dataclass(frozen=True)
class Endpoint:
    job_id: int
    host: str
    port: int


@dataclass
class _Figures:
    arrivals: collections.deque[float] = field(default_factory=collections.deque)
    waiting: int = 0
    last_at: float | None = None
    busy: bool = False
    """A request came or was in flight since the keeper last looked."""
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    """Counted since the keeper last took them (it adds them to the database)."""
    latencies_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENCIES_KEPT))


class Serving:
    """What the endpoint and the keeper share, per service name: the measured load and
    figures, and the ready replicas with their outstanding requests. Thread-safe: the API's
    event loop and the keeper's thread both use it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._figures: dict[str, _Figures] = collections.defaultdict(_Figures)
        self._ready: dict[str, list[Endpoint]] = {}
        self._running: dict[str, tuple[int, str]] = {}
        self._outstanding: collections.Counter[int] = collections.Counter()
        self.observe: Callable[[str, int, float], None] = lambda name, status, s: None
        """Also told of each answer (the Prometheus metrics)."""
        self._wanted: dict[str, int] = {}
        self.wake = threading.Event()
        """Set by a request that finds no ready replica: the keeper looks at once."""

    # -- the endpoint's side ------------------------------------------------------------------

    def arrived(self, name: str) -> None:
        with self._lock:
            f = self._figures[name]
            f.arrivals.append(self.clock())
            f.waiting += 1
            f.last_at = self.clock()
            f.busy = True

    def answered(self, name: str, status: int, latency_s: float, tokens: int = 0) -> None:
        """A request's end: ``status`` as the caller got it (an error is 5xx)."""
        ok = status < 500
        self.observe(name, status, latency_s)
        with self._lock:
            f = self._figures[name]
            f.waiting -= 1
            f.requests += 1
            f.errors += 0 if ok else 1
            f.tokens += tokens
            f.latencies_ms.append(latency_s * 1000)

    def pick(self, name: str, tried: set[int]) -> Endpoint | None:
        """The ready replica with the fewest outstanding requests, not among ``tried``; it is
        counted as outstanding until :meth:`release`."""
        with self._lock:
            choices = [e for e in self._ready.get(name, ()) if e.job_id not in tried]
            if not choices:
                return None
            best = min(choices, key=lambda e: self._outstanding[e.job_id])
            self._outstanding[best.job_id] += 1
            return best

    def release(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._outstanding[endpoint.job_id] -= 1
            if not self._outstanding[endpoint.job_id]:
                del self._outstanding[endpoint.job_id]  # replicas come and go: no zeros kept

    def failed(self, name: str, endpoint: Endpoint) -> None:
        """A replica that refused a connection is not ready until its health says so again."""
        with self._lock:
            self._ready[name] = [e for e in self._ready.get(name, ()) if e != endpoint]

    # -- the keeper's side --------------------------------------------------------------------

    def set_ready(self, service: Service, endpoints: list[Endpoint]) -> None:
        """A running service, with these replicas ready."""
        with self._lock:
            self._running[service.name] = (service.id or 0, service.team)
            self._ready[service.name] = endpoints
            self._wanted[service.name] = service.desired

    def replicas(self) -> dict[str, tuple[int, int]]:
        """Each running service's replicas: (ready, wanted)."""
        with self._lock:
            return {n: (len(self._ready.get(n, ())), self._wanted.get(n, 0))
                    for n in self._running}

    def forget(self, name: str) -> None:
        """A stopped service: its endpoint answers 404."""
        with self._lock:
            self._running.pop(name, None)
            self._ready.pop(name, None)
            self._wanted.pop(name, None)

    def names(self) -> set[str]:
        with self._lock:
            return set(self._running)

    def running(self, name: str) -> tuple[int, str] | None:
        """The id and team of the running service ``name`` (None: no such service)."""
        with self._lock:
            return self._running.get(name)

    def ready(self, name: str) -> list[Endpoint]:
        with self._lock:
            return list(self._ready.get(name, ()))

    def load(self, name: str) -> Load:
        now = self.clock()
        with self._lock:
            f = self._figures[name]
            while f.arrivals and f.arrivals[0] < now - WINDOW_S:
                f.arrivals.popleft()
            return Load(rps=len(f.arrivals) / WINDOW_S, waiting=f.waiting,
                        last_request_at=f.last_at)

    def latency(self, name: str) -> tuple[float | None, float | None]:
        """Latency's p50 and p99 over the recent requests, ms (the controller's memory)."""
        with self._lock:
            latencies = sorted(self._figures[name].latencies_ms)
        return _percentile(latencies, 0.50), _percentile(latencies, 0.99)

    def take(self, name: str) -> tuple[int, int, int, bool]:
        """Requests, errors and tokens counted since the last take, and whether a request
        came or was in flight meanwhile; the counts start again from zero."""
        with self._lock:
            f = self._figures[name]
            out = (f.requests, f.errors, f.tokens, f.busy or f.waiting > 0)
            f.requests = f.errors = f.tokens = 0
            f.busy = False
            return out


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[round(q * (len(ordered) - 1))], 2)


class ServiceKeeper(Periodic):
    """Each running service at the replicas it wants; each stopped one's replicas ended."""

    name = "services"
    first_at_start = True

    def __init__(self, services: ServiceStore, jobs: JobStore, serving: Serving,
                 started: Callable[[int], Started | None], wake_scheduler: Callable[[], None],
                 draining: Callable[[], set[str]] = set, down_after_s: float = DOWN_AFTER_S,
                 interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(interval_s)
        self.down_after_s = down_after_s
        self.services, self.jobs, self.serving = services, jobs, serving
        self.started, self.wake_scheduler, self.clock = started, wake_scheduler, clock
        self.draining = draining
        """Ray ids of the nodes being drained: their replicas move elsewhere."""
        self._draining: set[str] = set()
        self._fewer_since: dict[int, float] = {}
        self._failures: dict[int, tuple[int, float]] = {}
        """Per service: replicas that failed in a row, and when the last one ended."""
        self._live: dict[int, set[int]] = {}
        """Per service: its live replicas at the last look (those gone since have ended)."""
        self._client = httpx.Client(timeout=HEALTH_TIMEOUT_S)
        self._unsaved: dict[int, Traffic] = {}
        self._counted_at: dict[int, float] = {}
        self._saved_at = clock()

    def _run(self) -> None:
        # The interval, or at once when a request waits for a service with no ready replica.
        self._tick()
        while not self._stop.is_set():
            self.serving.wake.wait(self.interval_s)
            self.serving.wake.clear()
            self._tick()

    def stop(self) -> None:
        self._stop.set()
        self.serving.wake.set()
        super().stop()
        self._client.close()
        with contextlib.suppress(Exception):  # the database away: those seconds are lost
            self._save()

    def tick(self) -> None:
        services = self.services.listing()
        self._draining = self.draining() if services else set()
        for service in services:
            self.keep(service)
        for stopped in self.services.with_live_replicas():
            self._end(self.services.replicas(stopped.id or 0), "service stopped")
        for name in self.serving.names() - {s.name for s in services}:
            self.serving.forget(name)
        if self.clock() - self._saved_at >= SAVE_EVERY_S:
            self._save()

    def _count(self, service_id: int, name: str, ready: int) -> None:
        """What the endpoint counted since the last tick, and the ready replicas' seconds
        (idle ones where no request came or was in flight)."""
        requests, errors, tokens, busy = self.serving.take(name)
        now = self.clock()
        held = ready * (now - self._counted_at.get(service_id, now))
        self._counted_at[service_id] = now
        t = self._unsaved.get(service_id, Traffic())
        self._unsaved[service_id] = Traffic(
            t.requests + requests, t.errors + errors, t.tokens + tokens, t.replica_s + held,
            t.idle_replica_s + (0.0 if busy else held))

    def _save(self) -> None:
        minute_ms = int(time.time() // 60 * 60_000)
        for service_id, counted in list(self._unsaved.items()):
            if counted:
                self.services.add_traffic(service_id, minute_ms, counted)
            del self._unsaved[service_id]
        self._saved_at = self.clock()

    def keep(self, service: Service) -> None:
        assert service.id is not None
        request = ServiceRequest.model_validate(service.request)
        live = self.services.replicas(service.id)
        self._note_ends(service.id, live)
        ready = [e for e in (self._endpoint(j) for j in live
                             if j.state == JobState.RUNNING) if e is not None
                 and self._healthy(e, request.health)]
        self.serving.set_ready(service, ready)
        self._count(service.id, service.name, len(ready))
        if ready:
            self._failures.pop(service.id, None)
        want = self._wanted(service, request)
        self._reconcile(service, request, live, {e.job_id for e in ready}, want)

    def _wanted(self, service: Service, request: ServiceRequest) -> int:
        """The replicas the autoscaler wants now (kept in the service's row)."""
        assert service.id is not None
        shape = Shape(service.replicas_min, service.replicas_max, request.target_rps,
                      request.scale_to_zero_after_s)
        decision = decide(shape, self.serving.load(service.name), service.desired,
                          self._fewer_since.get(service.id), self.clock(), self.down_after_s)
        if decision.wants_fewer_since is None:
            self._fewer_since.pop(service.id, None)
        else:
            self._fewer_since[service.id] = decision.wants_fewer_since
        if decision.replicas != service.desired:
            self.services.set_desired(service.id, decision.replicas)
        return decision.replicas

    def _reconcile(self, service: Service, request: ServiceRequest, live: list[Job],
                   ready: set[int], want: int) -> None:
        """Start or end replicas toward ``want``. Those on a draining node do not count: each
        gets a replacement elsewhere, and they end only once the replicas elsewhere are ready
        (never fewer ready than wanted while GPUs for the replacements exist)."""
        leaving = [j for j in live if set(j.placement or ()) & self._draining]
        staying = [j for j in live if j not in leaving]
        missing = want - len(staying)
        if missing > 0 and not self._backing_off(service.id or 0, self.clock()):
            for _ in range(missing):
                self.jobs.submit(NewJob(name=service.name, user=service.user, team=service.team,
                                        request=request.replica, service_id=service.id))
            self.wake_scheduler()
        elif missing < 0:
            order = sorted(staying, key=lambda j: (j.state != JobState.PENDING,
                                                   j.id in ready, -(j.id or 0)))
            self._end(order[:-missing], "scaled down")
        if leaving and sum(j.id in ready for j in staying) >= want:
            self._end(leaving, "moved off a draining node")

    def _note_ends(self, service_id: int, live: list[Job]) -> None:
        """Replicas that ended since the last look, unasked (not cancelled: failed, lost, or
        exited), count toward the backoff; a replica that becomes ready resets it."""
        now_ids = {j.id or 0 for j in live}
        for job_id in self._live.get(service_id, set()) - now_ids:
            job = self.jobs.get(job_id)
            if job is not None and job.state != JobState.CANCELLED:
                count = self._failures.get(service_id, (0, 0.0))[0]
                self._failures[service_id] = (count + 1, self.clock())
        self._live[service_id] = now_ids

    def _backing_off(self, service_id: int, now: float) -> bool:
        count, at = self._failures.get(service_id, (0, 0.0))
        return count > 0 and now - at < min(BACKOFF_MAX_S, 2.0 ** (count - 1))

    def _endpoint(self, job: Job) -> Endpoint | None:
        started = self.started(job.id or 0)
        if started is None or started.port is None:
            return None
        return Endpoint(job.id or 0, started.node_ip, started.port)

    def _healthy(self, endpoint: Endpoint, path: str) -> bool:
        try:
            url = f"http://{endpoint.host}:{endpoint.port}{path}"
            return self._client.get(url).status_code == 200
        except httpx.HTTPError:
            return False

    def _end(self, replicas: list[Job], why: str) -> None:
        for job in replicas:
            self.jobs.request_cancel(job.id or 0, "clusterctl", is_admin=True,
                                     reason=f"replica {why}")
        if replicas:
            self.wake_scheduler()
