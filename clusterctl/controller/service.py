"""The controller: store, scheduling loop, Ray executor and housekeeping, started and stopped
as one, and what the HTTP API may ask of them (``interface.ControllerApi``; ``api/server.py``
serves the app built on it).

Start order matters: migrate the database, connect to Ray and reconcile with what runs there,
and only then accept requests, so the first answer already reflects the cluster.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clusterctl.controller import disk, gpu_health
from clusterctl.controller.attempts import Attempts
from clusterctl.controller.budgets import BudgetWatch
from clusterctl.controller.files import LogStore, PackageStore, expire_files
from clusterctl.controller.health_notes import HealthNotes
from clusterctl.controller.host_memory import HostMemory
from clusterctl.controller.idle import IdleReaper
from clusterctl.controller.installation import Bootstrap, bootstrap_admin, private
from clusterctl.controller.interface import Ingest
from clusterctl.controller.metrics import ControllerCollector, ControllerMetrics, controller_metrics
from clusterctl.controller.node_facts import NodeFacts, gpus_reported
from clusterctl.controller.notifier import Notifier
from clusterctl.controller.reports import ReportService, build
from clusterctl.controller.scheduling import (
    OutOfService,
    Scheduler,
    policy_config,
    scheduling_settings,
)
from clusterctl.controller.services import ServiceKeeper, Serving
from clusterctl.controller.submissions import Submissions
from clusterctl.controller.telemetry import GpuUsage, Housekeeper, job_usage, within_clock
from clusterctl.cost.budget import BudgetStatus
from clusterctl.cost.model import capacity_rate
from clusterctl.executor.local_ray import ray_env
from clusterctl.executor.ray_driver import RayDriver
from clusterctl.executor.types import NodeInfo, Started
from clusterctl.gpu_read import GpuRead
from clusterctl.notifications import node_drained
from clusterctl.reports.documents import CostDocument, JobCost, ReportDocument
from clusterctl.reports.waste import DEFAULT_MIN_IDLE_S
from clusterctl.scheduler.mixed_nodes import node_of
from clusterctl.scheduler.records import Wait
from clusterctl.settings import Settings
from clusterctl.store import (
    Allocation,
    AllocationUsageStore,
    AuditStore,
    CostStore,
    Engine,
    Job,
    JobStore,
    Lease,
    NodeStore,
    ReportStore,
    SampleStore,
    ServiceStore,
    UserStore,
    WebSessionStore,
    acquire_lease,
    installation_id,
    make_engine,
    migrate,
)
from clusterctl.store.budgets import BudgetStore
from clusterctl.store.notify import NotifyStore
from clusterctl.usage import Usage

log = logging.getLogger(__name__)


class Controller(HealthNotes):
    """Implements ``interface.ControllerApi`` once :meth:`prepare` has run.

    Two phases on purpose: constructing one is cheap and touches nothing (``up`` makes it
    before Ray is up, holding the database's lease), and :meth:`prepare` starts the parts in
    order, each recorded as it starts, so that :meth:`close` stops what a start that failed
    halfway had started. Every part :meth:`prepare` sets is declared here."""

    engine: Engine
    jobs: JobStore
    users: UserStore
    samples: SampleStore
    costs: CostStore
    drains: NodeStore
    audit: AuditStore
    logs: LogStore
    packages: PackageStore
    notify: NotifyStore
    budgets: BudgetStore
    web_sessions: WebSessionStore
    services: ServiceStore
    serving: Serving
    executor: RayDriver
    scheduler: Scheduler
    submissions: Submissions
    housekeeper: Housekeeper
    notifier: Notifier
    budget_watch: BudgetWatch
    reaper: IdleReaper
    reports: ReportService
    metrics: ControllerMetrics

    def __init__(self, settings: Settings, ray_address: str,
                 ray_token_file: str | None = None, lease: Lease | None = None) -> None:
        self.settings = settings
        self.lease = lease
        """This controller's hold on the database (one controller per database)."""
        self.ray_address = ray_address
        self.ray_token_file = ray_token_file
        self.max_package_bytes = int(settings.max_package_mb * (1 << 20))
        self.memory = HostMemory()
        self.disk_dirs: list[Path] = []
        """The data directory and a SQLite database's: where a full disk stops the controller."""
        self._stops: list[Callable[[], None]] = []
        """How to stop what :meth:`prepare` started, in the order it started them."""

    def _started(self, part: Any) -> None:
        part.start()
        self._stops.append(part.stop)

    def account_of(self, user: str) -> str | None:
        """The Unix account ``user``'s jobs run as; None where every job runs as the account
        that runs Ray (``run_as_submitter = false``)."""
        if not self.settings.run_as_submitter:
            return None
        found = self.users.by_name(user)
        return found.account if found is not None else user

    def prepare(self, connect_timeout_s: float = 90) -> None:
        """The database (migrated), Ray (connected, or an outage served through), then the
        scheduling loop and the background work; the API serves only after this."""
        data = Path(self.settings.data_dir)
        self._open_store(data)
        self._connect_ray()
        self._connect(connect_timeout_s)
        self._start_scheduling()
        self._start_background()
        self._register_metrics()

    def _open_store(self, data: Path) -> None:
        s = self.settings
        data.mkdir(parents=True, exist_ok=True)
        private(data, s.db_url)
        if self.lease is None:  # a second controller stops here, saying whose the first is
            self.lease = acquire_lease(s.db_url)
        migrate(s.db_url)
        self.engine = make_engine(s.db_url)
        self.jobs = JobStore(self.engine)
        self.users = UserStore(self.engine)
        self.samples = SampleStore(self.engine)
        self.costs = CostStore(self.engine)
        self.drains = NodeStore(self.engine)
        self.audit = AuditStore(self.engine)
        self.notify = NotifyStore(self.engine)
        self.budgets = BudgetStore(self.engine)
        self.web_sessions = WebSessionStore(self.engine)
        self.services = ServiceStore(self.engine)
        self.logs, self.packages = LogStore(data / "logs"), PackageStore(data / "packages")
        self.disk_dirs = disk.directories(data, s.db_url)

    def _connect_ray(self) -> None:
        namespace = f"clusterctl-{installation_id(self.engine)}"
        # The Ray driver process reads its auth settings from the environment it inherits.
        os.environ.update(ray_env(self.ray_token_file, base={}))
        self.executor = RayDriver(self.ray_address, namespace)
        self._stops.append(self.executor.shutdown)

    def _start_scheduling(self) -> None:
        s = self.settings
        attempts = Attempts(self.jobs, self.executor, self.logs, self.packages,
                            kill_grace_s=s.kill_grace_s, preempt_grace_s=s.preempt_grace_s,
                            attach_grace_s=s.attach_grace_s,
                            account_of=self.account_of,
                            fallback_account=s.job_account or None)
        self.budget_watch = BudgetWatch(self.budgets, self._team_spent,
                                        lambda team, body: self.notifier.tell_team(team, body))
        self.scheduler = Scheduler(
            self.jobs, self.executor, attempts, policy_config=policy_config(s),
            out_of_service=self.out_of_service,
            facts=NodeFacts(lambda: gpus_reported(self.samples), self.gpu_hour_costs),
            fair_share_by_rate=s.fair_share_by_rate,
            budget_holds=self.budget_watch.holds,
        )
        self.executor.on_change = self.scheduler.wake.set  # a job's end is acted on at once
        self._started(self.scheduler)
        self.submissions = Submissions(self.jobs, self.audit, self.packages, self.why_never,
                                       self.wake, s.user_max_priority, s.notify_private_ok)

    def _start_background(self) -> None:
        """Rollups and file expiry, notices, budgets and idle reclaim."""
        s = self.settings
        self.housekeeper = Housekeeper(
            self.samples, AllocationUsageStore(self.engine),
            raw_keep_s=s.sample_retention_s, minute_keep_s=s.minute_rollup_retention_s,
            idle_threshold=s.waste_threshold,
            also=[lambda now: expire_files(self.jobs, self.logs, self.packages, now=now,
                                           log_keep_s=s.log_retention_s,
                                           package_keep_s=s.package_retention_s,
                                           also_in_use=self.services.packages_in_use())])
        self._started(self.housekeeper)
        self.notifier = Notifier(self.notify, self._job_total_cost, s.notify_url or None)
        self._started(self.notifier)
        self._started(self.budget_watch)
        self.reaper = IdleReaper(self.jobs, self.samples, s.waste_threshold, s.idle_timeouts,
                                 self.notifier.tell_owner, wake=self.wake,
                                 interactive_s=int(s.interactive_idle_timeout_s) or None)
        self._started(self.reaper)
        self.serving = Serving()
        self._started(ServiceKeeper(
            self.services, self.jobs, self.serving, self.attach_point, self.wake,
            draining=lambda: {n.id for n in self.cluster() if n.name in self.drains.drained()},
            down_after_s=s.service_scale_down_s))
        self.reports = ReportService(ReportStore(self.engine), self.costs, self.samples,
                                     s.waste_threshold)

    def _register_metrics(self) -> None:
        self.metrics = controller_metrics(
            ControllerCollector(self.jobs, self.costs, self.drains, self.cluster,
                                self.scheduler.policy_config.quotas,
                                lambda: self.scheduler.passes),
            ray_up=lambda: self.scheduler.ray_down is None, replicas=self.serving.replicas)
        self.serving.observe = self.metrics.answered

    def _connect(self, timeout_s: float) -> None:
        """Wait for Ray to answer with its nodes. One that does not within ``timeout_s`` is an
        outage like any other: the controller serves, says so, and schedules once it answers
        (under systemd, exiting instead would only start it again into the same outage)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.executor.connect(max(deadline - time.monotonic(), 1.0))
                if self.executor.nodes():
                    return
                why = "it reports no nodes"
            except Exception as e:  # Ray not up yet
                why = str(e)
            if time.monotonic() > deadline:
                log.error("Ray at %s did not answer within %.0fs (%s); serving meanwhile",
                          self.ray_address, timeout_s, why)
                return
            time.sleep(0.5)

    def bootstrap_admin(self, existing_token: str | None) -> Bootstrap:
        """Make sure the local OS user is an admin whose token the CLI holds."""
        return bootstrap_admin(self.users, existing_token)

    def close(self) -> None:
        """Stop what :meth:`prepare` started, last started first (the API stops serving
        first)."""
        while self._stops:
            self._stops.pop()()
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    # -- what the API may ask (interface.ControllerApi) ---------------------------------------

    def gpu_hour_costs(self) -> dict[str, float]:
        """Node name → what one of its GPU-hours costs now, from the inventory."""
        now = datetime.now(timezone.utc)
        return {spec.node: float(capacity_rate(spec.machine(), now))
                for spec in self.costs.machines()}

    def wait_for_nodes(self, count: int, timeout_s: float) -> None:
        """Until the scheduler sees ``count`` nodes (Ray workers just started join in a few
        seconds), or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while len(self.cluster()) < count and time.monotonic() < deadline:
            time.sleep(0.3)

    def cluster(self) -> Sequence[NodeInfo]:
        return self.scheduler.nodes

    def suspect_nodes(self) -> set[str]:
        return self.scheduler.attempts.suspected()

    def free_gpus(self, active: list[Job]) -> dict[str, int]:
        """Ray node id → its free GPUs (a machine of several models: all of its parts')."""
        free: dict[str, int] = {}
        for c in self.scheduler.capacity(active):
            free[node_of(c.id)] = free.get(node_of(c.id), 0) + c.free_gpus
        return free

    def waiting(self) -> Mapping[int, Wait]:
        return self.scheduler.waiting

    def why_never(self, gpus: int, nodes: int, gpu_types: list[str] | None = None,
                  gpu_mem: int | None = None) -> tuple[str, str] | None:
        return self.scheduler.why_never(gpus, nodes, gpu_types, gpu_mem)

    def wake(self) -> None:
        self.scheduler.wake.set()

    def idle_jobs(self, job_ids: Iterable[int]) -> set[int]:
        return self.reports.store.idle_jobs(list(job_ids), DEFAULT_MIN_IDLE_S)

    def job_usage(self, allocations: Sequence[Allocation]
                  ) -> tuple[Usage, list[GpuUsage]] | None:
        now = time.time()
        return job_usage(allocations, self.samples, now, now - self.settings.sample_retention_s)

    def job_cost(self, job_id: int, now_ms: int) -> JobCost | None:
        return self.reports.job_cost(job_id, now_ms)

    def jobs_cost(self, job_ids: Sequence[int], now_ms: int) -> JobCost | None:
        return self.reports.jobs_cost(job_ids, now_ms, exact=True)

    def _job_total_cost(self, job_id: int) -> float | None:
        cost = self.job_cost(job_id, int(time.time() * 1000))
        return None if cost is None else cost.total_cost

    def announce(self, body: dict[str, Any]) -> None:
        self.notifier.announce(body)

    def budget_status(self, fresh: bool = False) -> list[BudgetStatus]:
        if not fresh:
            return self.budget_watch.last()
        found = self.budget_watch.refresh()
        self.wake()
        return found

    def budget_notes(self, teams: list[str]) -> list[str]:
        return self.budget_watch.notes(teams)

    def attach_point(self, job_id: int) -> Started | None:
        launch = self.scheduler.attempts.launches.get(job_id)
        started = launch.started if launch is not None else None
        return next((s for s in started or () if s.rank == 0), None)

    def idle_warning(self, job: Job) -> str | None:
        return self.reaper.warning(job)

    def _team_spent(self, team: str, start: datetime, now: datetime, loaded: bool) -> float:
        """What the cost report charges ``team`` from ``start`` to ``now``."""
        report = self.report("cost", start, now, by="team", loaded=loaded,
                             min_idle_s=1800.0, now=now)
        assert isinstance(report, CostDocument)
        return sum(r.total_cost for r in report.rows if r.kind == "team" and r.key == team)

    def quotas(self) -> dict[str, Any]:
        s = self.settings
        typed = s.type_quotas
        return {"quotas": {t: q for t, q in s.quotas.items() if t not in typed},
                "type_quotas": typed, "policy": scheduling_settings(s)}

    def report(self, kind: str, start: datetime, end: datetime, *, by: str | None,
               loaded: bool, min_idle_s: float, now: datetime, limit: int | None = None,
               offset: int = 0) -> ReportDocument:
        return build(self.reports, kind, start, end, by=by, loaded=loaded,
                     min_idle_s=min_idle_s, now=now, limit=limit, offset=offset)

    def ingest(self, node: str, rows: Sequence[GpuRead]) -> Ingest:
        kept, refused = within_clock(rows, time.time(), self.settings.sample_retention_s)
        for reason, n in refused.items():
            if n:
                self.metrics.refused.labels(reason).inc(n)
        stored = self.samples.ingest(node, kept)
        fresh = [r for r in kept if (r.gpu_uuid, r.boot_id, r.seq) in stored.new]
        fault = gpu_health.fatal(fresh)  # once: a replayed batch is not a new fault
        if fault is not None:
            self.drain_for_health(node, fault)
        return Ingest(stored.inserted, stored.duplicates, len(rows) - len(kept))

    def drain_for_health(self, node: str, reason: str) -> None:
        """Take a node with a faulty GPU out of service: nothing starts there, its jobs end
        LOST (and are requeued within their retries) at the scheduler's next pass, and only an
        admin's undrain brings it back."""
        current = self.drains.drained().get(node)
        if current is not None and current.by == gpu_health.ACTOR:
            return  # already out for a fault; the first reason stands
        self.drains.drain(node, gpu_health.ACTOR, reason)
        self.audit.record(gpu_health.ACTOR, "node.drain", node, reason)
        self.metrics.health_drains.labels(node).inc()
        self.announce(node_drained(node, reason, gpu_health.ACTOR))
        log.error("node %s drained: %s; its jobs end and are requeued within their retries, "
                  "`clusterctl nodes undrain %s` once it is repaired", node, reason, node)
        self.wake()

    def out_of_service(self) -> OutOfService:
        """Drained nodes, and those drained for a GPU fault (their jobs are ended)."""
        drained = self.drains.drained()
        return OutOfService(set(drained), {n: d.reason or "GPU fault" for n, d in drained.items()
                                           if d.by == gpu_health.ACTOR})
