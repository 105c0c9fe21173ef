"""``GET /v1/reports/{kind}``: utilization, cost, amortization and waste as JSON. The CLI draws
tables, CSV and plots from the same JSON, so every output of a report shows the same numbers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request

from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import Controller
from clusterctl.parsing import BadInput, parse_duration, parse_period
from clusterctl.reports import cost, utilization

router = APIRouter()
KINDS = {"utilization": utilization.BY, "cost": cost.BY, "amortization": (), "waste": ()}


@router.get("/v1/reports/{kind}")
def report(kind: str, request: Request, user: CurrentUser, ctl: Controller,
           since: str | None = None, from_: str | None = None, to: str | None = None,
           by: str | None = None,
           loaded: bool = False, min_idle: str = "30m") -> dict[str, Any]:
    if kind not in KINDS:
        raise BadInput("REPORT", f"{kind!r} is not one of {', '.join(KINDS)}")
    if by is not None and by not in KINDS[kind]:
        allowed = "|".join(KINDS[kind]) or "nothing (this report has no --by)"
        raise BadInput("--by", f"{by!r} is not one of {allowed}")
    now = datetime.now(timezone.utc)
    start, end = parse_period(since, from_ or request.query_params.get("from"), to, now)
    return ctl.report(kind, start, end, by=by, loaded=loaded,
                      min_idle_s=parse_duration(min_idle, "--min-idle"), now=now)
