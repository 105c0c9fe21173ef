"""What each page shows, from the API's own route functions: the same rows, the same figures,
and the same permissions (others' commands stay hidden; a job's page is its owner's and the
admins')."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from fastapi import Response

from clusterctl.api.routes import jobs as job_routes
from clusterctl.api.routes import nodes as node_routes
from clusterctl.api.routes import services as service_routes
from clusterctl.api.routes.services import ServiceOut
from clusterctl.api.schemas import JobDetail, JobOut, NodeOut
from clusterctl.api.web.job_chart import Step, job_steps
from clusterctl.controller.interface import ControllerApi
from clusterctl.gpu_types import parse_type
from clusterctl.parsing import BadInput
from clusterctl.states import JobState
from clusterctl.store import User

PAGE = 100
"""Jobs a queue page lists; the page says how many match and links to the older ones."""
LOG_TAIL = 64 * 1024


@dataclass(frozen=True)
class Filters:
    user: str | None = None
    team: str | None = None
    state: str | None = None
    before: int | None = None
    gpu_type: str | None = None

    @classmethod
    def of(cls, user: str | None, team: str | None, state: str | None,
           before: str | None, gpu_type: str | None = None) -> Filters:
        """People's filters as typed in the form: blanks are no filter."""
        if before and not (before.isascii() and before.isdigit()):
            raise BadInput("before", "must be a job id")
        kind = parse_type(gpu_type, "gpu_type") if gpu_type and gpu_type.strip() else None
        return cls(user or None, team or None, (state or "").upper() or None,
                   int(before) if before else None, kind)

    def query(self, **change: str | int | None) -> str:
        values = {"user": self.user, "team": self.team, "state": self.state,
                  "gpu_type": self.gpu_type, "before": self.before, **change}
        return urlencode({k: v for k, v in values.items() if v is not None})


@dataclass
class Running:
    job: JobOut
    utilization: float | None
    """The mean of its GPUs' last readings (None until an agent reports them)."""


@dataclass
class Queue:
    filters: Filters
    pending: list[tuple[int | None, JobOut]] = field(default_factory=list)
    """(position in the last scheduling pass, job), in that order; None: not yet considered."""
    running: list[Running] = field(default_factory=list)
    others: list[JobOut] = field(default_factory=list)
    """Starting, or any other state a filter asked for."""
    total: int = 0
    older: str | None = None
    """The query of the next page back, when more jobs match than this page shows."""


def queue(ctl: ControllerApi, viewer: User, filters: Filters) -> Queue:
    headers = Response()
    state = filters.state
    if state is not None and state not in JobState.__members__:
        raise BadInput("state", f"{state!r} is not one of " + ", ".join(JobState.__members__))
    rows = job_routes.list_jobs(viewer, ctl, headers, all=state is not None, owner=filters.user,
                                state=state, limit=PAGE, team=filters.team,
                                before=filters.before, gpu_type=filters.gpu_type)
    out = Queue(filters, total=int(headers.headers.get("X-Total-Count", len(rows))))
    if out.total > len(rows) and rows:
        out.older = filters.query(before=rows[0].id)
    order = {job_id: i + 1 for i, job_id in enumerate(ctl.waiting())}
    util = _job_utilization(ctl)
    pending = [j for j in rows if j.state == JobState.PENDING]
    out.pending = sorted(((order.get(j.id), j) for j in pending),
                         key=lambda p: (p[0] is None, p[0] or 0, p[1].id))
    out.running = [Running(j, util.get(j.id)) for j in rows if j.state == JobState.RUNNING]
    out.others = [j for j in rows if j.state not in (JobState.PENDING, JobState.RUNNING)]
    return out


def _job_utilization(ctl: ControllerApi) -> dict[int, float]:
    """Each running job's GPUs' last readings, averaged: the GPUs it holds (its open
    allocations) and what their agents last read (the same rows ``nodes`` shows), two reads
    where the whole GPU listing would be several, once a second per open queue page."""
    last = {(d.node, d.gpu_index): d.utilization for d in ctl.samples.devices()}
    readings: dict[int, list[float]] = {}
    for a in ctl.jobs.allocations(open_only=True):
        value = last.get((a.node, a.gpu_index))
        if value is not None:
            readings.setdefault(a.job_id, []).append(value)
    return {j: sum(v) / len(v) for j, v in readings.items()}


def gpus(ctl: ControllerApi, viewer: User) -> list[NodeOut]:
    return node_routes.nodes(viewer, ctl)


@dataclass
class JobPage:
    job: JobDetail
    log: str
    log_cut: bool
    """Only the log's last ``LOG_TAIL`` bytes are shown."""
    may_act: bool
    steps: list[Step] = field(default_factory=list)
    """Its run as a chart (the page's first rendering only: the live part leaves it out)."""


def job(ctl: ControllerApi, viewer: User, job_id: str, chart: bool = False) -> JobPage:
    detail = job_routes.show(job_id, viewer, ctl)
    attempt = max(detail.attempt, 1)
    size = ctl.logs.size(detail.id, attempt, 0)
    start = max(0, size - LOG_TAIL)
    data = ctl.logs.read(detail.id, attempt, 0, start, LOG_TAIL)
    return JobPage(detail, data.decode("utf-8", "replace"), start > 0,
                   may_act=viewer.is_admin or detail.user == viewer.name,
                   steps=job_steps(ctl, detail.allocations) if chart else [])


def services(ctl: ControllerApi) -> list[ServiceOut]:
    """The running services, as ``serve list`` shows them (every user may see them, as the
    queue's jobs)."""
    return [service_routes.service_out(ctl, s) for s in ctl.services.listing()]
