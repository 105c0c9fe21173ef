"""The controller's Prometheus metrics: the queue, who holds GPUs, and what holding them costs.

Read from the database and the scheduler's node list at scrape time (a collector, not gauges
kept up to date by hand), so the figures are the ones ``clusterctl jobs`` and ``nodes`` show and
survive a controller restart. Per-GPU readings (utilization, memory, power, energy) come from
the agents' own ``/metrics``; the Grafana dashboards join the two on the node label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from clusterctl.cost.model import capacity_rate
from clusterctl.executor.types import NodeInfo
from clusterctl.states import LIVE, ordered
from clusterctl.store import CostStore, Job, JobStore, NodeStore


class ControllerCollector(Collector):
    def __init__(self, jobs: JobStore, costs: CostStore, nodes: NodeStore,
                 cluster: Callable[[], Sequence[NodeInfo]], quotas: Mapping[str, float],
                 passes: Callable[[], int] = lambda: 0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.jobs, self.costs, self.node_store = jobs, costs, nodes
        self.cluster, self.quotas, self.passes = cluster, quotas, passes
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        pending, active = self.jobs.pending(), self.jobs.active()
        yield from self._queue(pending, active, now)
        cluster = self.cluster()
        yield from self._holders(active, {n.id: n.name for n in cluster}, now)
        yield from self._nodes(cluster)
        yield CounterMetricFamily("clusterctl_scheduler_passes",
                                  "Scheduler passes completed since the controller started.",
                                  value=self.passes())

    def _queue(self, pending: list[Job], active: list[Job], now: datetime) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("clusterctl_jobs", "Jobs pending, starting or running "
                                 "(clusterctl jobs).", labels=["state", "team"])
        count = Counter((j.state, j.team) for j in [*pending, *active])
        teams = sorted({team for _, team in count} | set(self.quotas))  # zeros, not gaps
        for state in ordered(LIVE):
            for team in teams:
                jobs.add_metric([state.value, team], count[(state.value, team)])
        yield jobs
        gpus = GaugeMetricFamily("clusterctl_queue_pending_gpus",
                                 "GPUs the pending jobs ask for.", labels=["team"])
        oldest = GaugeMetricFamily("clusterctl_queue_oldest_wait_seconds",
                                   "How long the longest-waiting pending job has waited.",
                                   labels=["team"])
        asked: Counter[str] = Counter()
        waited: dict[str, float] = {}
        for j in pending:
            asked[j.team] += j.gpus * j.nodes
            waited[j.team] = max(waited.get(j.team, 0.0), (now - j.submitted_at).total_seconds())
        for team in sorted(asked):
            gpus.add_metric([team], asked[team])
            oldest.add_metric([team], waited[team])
        yield gpus
        yield oldest

    def _holders(self, active: list[Job], names: Mapping[str, str],
                 now: datetime) -> Iterator[Metric]:
        per_job = GaugeMetricFamily(
            "clusterctl_job_gpus", "GPUs a starting or running job holds on each node.",
            labels=["job_id", "user", "team", "node"])  # ids only: a job's name and command
        # are its owner's to see, and /metrics has no token
        team_gpus: Counter[str] = Counter()
        team_cost: dict[str, float] = {}
        machines = self.costs.machines()
        rates = {m.node: float(capacity_rate(m.machine(), now)) for m in machines}  # per GPU-h
        for j in active:
            for node_id in j.placement or []:
                node = names.get(node_id, node_id[:12])
                per_job.add_metric([str(j.id), j.user, j.team, node], j.gpus)
                team_gpus[j.team] += j.gpus
                team_cost[j.team] = team_cost.get(j.team, 0.0) + j.gpus * rates.get(node, 0.0)
        yield per_job
        held = GaugeMetricFamily("clusterctl_team_gpus", "GPUs a team's jobs hold.",
                                 labels=["team"])
        quota = GaugeMetricFamily("clusterctl_team_quota_gpus",
                                  "A team's guaranteed GPUs (the quotas setting).",
                                  labels=["team"])
        cost = GaugeMetricFamily(
            "clusterctl_team_cost_dollars_per_hour",
            "Amortized capacity cost per hour of the GPUs a team holds (purchase less resale "
            "over the life, plus fixed fees; energy is in the agents' energy counters).",
            labels=["team"])
        for team in sorted(set(team_gpus) | set(self.quotas)):
            held.add_metric([team], team_gpus[team])
            cost.add_metric([team], team_cost.get(team, 0.0))
        for team, q in sorted(self.quotas.items()):
            quota.add_metric([team], q)
        yield held
        yield quota
        yield cost
        node_cost = GaugeMetricFamily(
            "clusterctl_node_cost_dollars_per_hour",
            "Amortized capacity cost per hour of a machine, busy or idle (from the hardware "
            "inventory).", labels=["node"])
        for m in sorted(machines, key=lambda m: m.node):
            if m.sold_on is not None and m.sold_on <= now.date():
                continue  # sold: no longer a cost of the cluster
            node_cost.add_metric([m.node], rates[m.node] * m.gpus)
        yield node_cost

    def _nodes(self, cluster: Sequence[NodeInfo]) -> Iterator[Metric]:
        gpus = GaugeMetricFamily("clusterctl_node_gpus", "GPUs Ray reports on a live node.",
                                 labels=["node"])
        drained = GaugeMetricFamily("clusterctl_node_drained",
                                    "1 while a node is drained (clusterctl nodes drain).",
                                    labels=["node"])
        marks = self.node_store.drained()
        for n in cluster:
            if n.alive:
                gpus.add_metric([n.name], n.gpus)
                drained.add_metric([n.name], 1 if n.name in marks else 0)
        yield gpus
        yield drained


@dataclass(frozen=True)
class ControllerMetrics:
    """The controller's registry (served on its metrics port) and the counters it keeps by
    hand, for what the database does not record."""

    registry: CollectorRegistry
    refused: prometheus_client.Counter
    """Agent samples refused for their time stamps, by reason."""
    health_drains: prometheus_client.Counter
    """Nodes drained for a GPU fault, by node."""
    service_requests: prometheus_client.Counter
    """Requests a service's endpoint answered, by service and status code class."""
    service_latency: prometheus_client.Histogram
    """Their latency, as the caller saw it through the endpoint."""

    def answered(self, service: str, status: int, latency_s: float) -> None:
        self.service_requests.labels(service, f"{status // 100}xx").inc()
        self.service_latency.labels(service).observe(latency_s)


class ServingCollector(Collector):
    """Each running service's replicas, ready and wanted, as the keeper last saw them."""

    def __init__(self, replicas: Callable[[], Mapping[str, tuple[int, int]]]) -> None:
        self.replicas = replicas

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("clusterctl_service_replicas", "A model service's replicas: "
                                   "ready (answering), and wanted by its autoscaler.",
                                   labels=["service", "state"])
        for name, (ready, wanted) in sorted(self.replicas().items()):
            family.add_metric([name, "ready"], ready)
            family.add_metric([name, "wanted"], wanted)
        yield family


def controller_metrics(collector: ControllerCollector, ray_up: Callable[[], bool],
                       replicas: Callable[[], Mapping[str, tuple[int, int]]] = dict
                       ) -> ControllerMetrics:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    registry.register(ServingCollector(replicas))
    prometheus_client.Gauge(
        "clusterctl_ray_up", "1 while the Ray head answers the controller, 0 while it does not "
        "(jobs then show their last known state).", registry=registry).set_function(ray_up)
    return ControllerMetrics(
        registry,
        refused=prometheus_client.Counter(
            "clusterctl_samples_refused", "Agent samples refused for a time stamp outside the "
            "controller's clock window (future: beyond its clock skew; too_old: past the raw "
            "retention).", ["reason"], registry=registry),
        health_drains=prometheus_client.Counter(
            "clusterctl_node_health_drains", "Nodes drained by the controller for a GPU fault "
            "(a fatal XID, a lost GPU).", ["node"], registry=registry),
        service_requests=prometheus_client.Counter(
            "clusterctl_service_requests", "Requests a model service's endpoint answered, by "
            "status class (5xx includes 503 for no ready replica).", ["service", "code"],
            registry=registry),
        service_latency=prometheus_client.Histogram(
            "clusterctl_service_request_duration_seconds", "A model service's requests, from "
            "their arrival at the endpoint to the answer's end.", ["service"],
            buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry))
