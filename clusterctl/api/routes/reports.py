"""``GET /v1/reports/{kind}``: utilization, cost, amortization and waste as JSON. The CLI draws
tables, CSV and plots from the same JSON, so every output of a report shows the same numbers."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Request, Response

from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.controller.interface import ControllerApi
from clusterctl.parsing import BadInput, parse_duration
from clusterctl.reports import cost, utilization
from clusterctl.reports.documents import ReportDocument
from clusterctl.reports.period import parse_report_period

router = APIRouter()
KINDS = {"utilization": utilization.BY, "cost": cost.BY, "amortization": (), "waste": ()}
JOB_ROWS = 100
"""The jobs ``cost --by job`` shows unless told (a year holds 100,000)."""


@router.get("/v1/reports/{kind}")
def report(kind: str, request: Request, user: CurrentUser, ctl: ControllerDep,
           since: str | None = None, from_: str | None = None, to: str | None = None,
           by: str | None = None, loaded: bool = False, min_idle: str = "30m",
           limit: int | None = None, offset: int = 0, all: bool = False) -> Response:
    """``cost --by job`` returns the ``limit`` dearest jobs (100 unless said) from ``offset``
    and a ``rest`` row summing the others; ``all`` returns every job."""
    document = build_report(ctl, kind, since, from_ or request.query_params.get("from"), to,
                            by, loaded, min_idle, limit, offset, all)
    return Response(document.wire_bytes(), media_type="application/json")


def build_report(ctl: ControllerApi, kind: str, since: str | None, from_: str | None,
                 to: str | None, by: str | None = None, loaded: bool = False,
                 min_idle: str = "30m", limit: int | None = None, offset: int = 0,
                 all: bool = False) -> ReportDocument:
    """A report as the API answers it (the dashboard shows the same), its inputs checked."""
    if kind not in KINDS:
        raise BadInput("REPORT", f"{kind!r} is not one of {', '.join(KINDS)}")
    if by is not None and by not in KINDS[kind]:
        allowed = "|".join(KINDS[kind]) or "nothing (this report has no --by)"
        raise BadInput("--by", f"{by!r} is not one of {allowed}")
    now = datetime.now(timezone.utc)
    start, end = parse_report_period(since, from_, to, now, ctl.settings.max_report_days)
    if limit is not None and not 1 <= limit <= 1_000_000:
        raise BadInput("--limit", "must be from 1 to 1000000")
    if not 0 <= offset <= 10**9:
        raise BadInput("offset", "must be 0 or more")
    paged = kind == "cost" and (by or "job") == "job" and not all
    return ctl.report(kind, start, end, by=by, loaded=loaded,
                      min_idle_s=parse_duration(min_idle, "--min-idle"), now=now,
                      limit=(limit or JOB_ROWS) if paged else limit, offset=offset)
