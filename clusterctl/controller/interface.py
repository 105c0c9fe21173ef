"""What the HTTP API may ask of the controller: the one door from ``api/`` into it.

Routes see this protocol, never the scheduler loop, the executor or the report internals, so
that the loop can change without touching a route and a route cannot call Ray by accident
(the API must stay responsive while the cluster is slow or away). The stores are part of it:
routes read and write jobs, users and the inventory through them, with their guarded updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from clusterctl.controller.files import LogStore, PackageStore
from clusterctl.controller.host_memory import HostMemory
from clusterctl.controller.services import Serving
from clusterctl.controller.submissions import Submissions
from clusterctl.controller.telemetry import GpuUsage
from clusterctl.cost.budget import BudgetStatus
from clusterctl.executor.types import NodeInfo, Started
from clusterctl.gpu_read import GpuRead
from clusterctl.reports.documents import JobCost, ReportDocument
from clusterctl.scheduler.records import Wait
from clusterctl.settings import Settings
from clusterctl.store import (
    Allocation,
    AuditStore,
    CostStore,
    Job,
    JobStore,
    NodeStore,
    SampleStore,
    ServiceStore,
    UserStore,
    WebSessionStore,
)
from clusterctl.store.budgets import BudgetStore
from clusterctl.store.notify import NotifyStore
from clusterctl.usage import Usage


@dataclass(frozen=True)
class Ingest:
    inserted: int
    duplicates: int
    refused: int


class ControllerApi(Protocol):
    @property
    def jobs(self) -> JobStore: ...
    @property
    def users(self) -> UserStore: ...
    @property
    def web_sessions(self) -> WebSessionStore: ...
    @property
    def samples(self) -> SampleStore: ...
    @property
    def costs(self) -> CostStore: ...
    @property
    def drains(self) -> NodeStore: ...
    @property
    def audit(self) -> AuditStore: ...
    @property
    def logs(self) -> LogStore: ...
    @property
    def packages(self) -> PackageStore: ...
    @property
    def notify(self) -> NotifyStore: ...
    @property
    def budgets(self) -> BudgetStore: ...
    @property
    def services(self) -> ServiceStore: ...
    @property
    def serving(self) -> Serving:
        """What the service endpoint measures and where it may send a request."""
        ...
    @property
    def submissions(self) -> Submissions:
        """The rules on a job request (teams, priority limits, the audit), which every
        submit and update goes through."""
        ...

    def budget_status(self, fresh: bool = False) -> list[BudgetStatus]:
        """Every budget's figures: as last computed, or computed now (``fresh``; it also
        releases or holds the teams' jobs at the next pass)."""
        ...

    def attach_point(self, job_id: int) -> Started | None:
        """A running job's rank 0 as its runner started it (its node's address and, for an
        interactive job, its terminal); None while the controller does not hold the attempt
        (not started, or not re-attached yet after a restart)."""
        ...

    def idle_warning(self, job: Job) -> str | None:
        """Why a running job is about to be ended for idle GPUs, if it is."""
        ...

    def budget_notes(self, teams: list[str]) -> list[str]:
        """The budgets of these teams that are at 80% or over, in words."""
        ...

    def announce(self, body: dict[str, Any]) -> None:
        """Post ``body`` to the cluster's webhook (the ``notify_url`` setting), if any, in the
        background."""
        ...
    @property
    def memory(self) -> HostMemory:
        """Each node's memory as its agent last said (``host_memory.py``)."""
        ...

    def disk_full(self) -> str:
        """What a write refused for want of space says: which disk, how full."""
        ...

    @property
    def settings(self) -> Settings:
        """The controller's settings (report bounds, webhook rules)."""
        ...

    @property
    def max_package_bytes(self) -> int: ...
    def cluster(self) -> Sequence[NodeInfo]:
        """The nodes as of the scheduler's last pass."""
        ...

    def gpu_hour_costs(self) -> dict[str, float]:
        """Node name → what one of its GPU-hours costs (the inventory's capacity rate)."""
        ...

    def suspect_nodes(self) -> set[str]:
        """Ids of the nodes whose runners just stopped answering: nothing new lands there
        until Ray says whether they live."""
        ...

    def free_gpus(self, active: list[Job]) -> dict[str, int]:
        """Free GPUs per node id, given the jobs that hold GPUs."""
        ...

    def waiting(self) -> Mapping[int, Wait]:
        """Why each pending job waits, as of the scheduler's last pass."""
        ...

    def why_never(self, gpus: int, nodes: int, gpu_types: list[str] | None = None,
                  gpu_mem: int | None = None) -> tuple[str, str] | None: ...

    def wake(self) -> None:
        """Ask for a scheduler pass now (a job was submitted, cancelled, a node drained)."""
        ...

    def idle_jobs(self, job_ids: Iterable[int]) -> set[int]:
        """The jobs among these with a GPU that sat idle for the waste report's minimum."""
        ...

    def job_usage(self, allocations: Sequence[Allocation]
                  ) -> tuple[Usage, list[GpuUsage]] | None:
        """A job's measured usage over its allocations, in total and per GPU."""
        ...

    def job_cost(self, job_id: int, now_ms: int) -> JobCost | None:
        """A job's cost so far, as ``show`` prints it."""
        ...

    def jobs_cost(self, job_ids: Sequence[int], now_ms: int) -> JobCost | None:
        """What these jobs cost together so far (a service's replicas), not rounded."""
        ...

    def quotas(self) -> dict[str, Any]:
        """The scheduler's team quotas: ``quotas`` (over all types) and ``type_quotas`` (per
        GPU type), as the settings give them; and ``policy``, the settings of its order and
        preemption (``scheduling_policy``, ``starve_after_s``, ``preempt``, ...)."""
        ...

    def report(self, kind: str, start: datetime, end: datetime, *, by: str | None,
               loaded: bool, min_idle_s: float, now: datetime, limit: int | None = None,
               offset: int = 0) -> ReportDocument:
        """A report as a typed document (the CLI draws tables, CSV and plots from it); ``limit`` and
        ``offset`` page the rows of ``cost``, the dearest first."""
        ...

    def ingest(self, node: str, rows: Sequence[GpuRead]) -> Ingest:
        """Store an agent's samples, less those stamped outside the controller's clock
        window (counted in ``clusterctl_samples_refused_total``)."""
        ...

    def health(self) -> dict[str, str]:
        """What keeps the controller from serving (``{"database": why}``, ``{"ray": why}``);
        empty when none."""
        ...

    def degraded(self) -> dict[str, str]:
        """What the API still serves through but every user should know (``{"ray": why}``):
        sent on each answer as a warning the CLI prints."""
        ...
