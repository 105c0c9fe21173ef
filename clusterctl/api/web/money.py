"""Usage and money, and the admin's page: each section of the usage page is a report the API
serves (``build_report``: the same figures as ``clusterctl report ... --json``, to the cent),
loaded on its own so that the page itself answers at once and a year's report does not hold
up the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from clusterctl.api.deps import ControllerDep
from clusterctl.api.routes import budgets as budget_routes
from clusterctl.api.routes import users as user_routes
from clusterctl.api.routes.reports import build_report
from clusterctl.api.web.render import page
from clusterctl.api.web.signin import Viewer, error_page
from clusterctl.parsing import BadInput, parse_duration

router = APIRouter()

PERIODS = ("7d", "30d", "90d", "365d")
TOP = 20


@dataclass(frozen=True)
class Section:
    title: str
    template: str
    load: Any
    """(controller, since) → what the template shows."""


def _report(kind: str, by: str | None = None) -> Any:
    """The section's report over the page's period (amortization covers the machines' lives:
    it takes none)."""
    if kind == "amortization":
        return lambda ctl, since: build_report(ctl, kind, None, None, None)
    return lambda ctl, since: build_report(ctl, kind, since, None, None, by=by)


SECTIONS = {
    "utilization": Section("Utilization by day", "usage_utilization.html",
                           _report("utilization", "day")),
    "gpu-type": Section("Utilization by GPU type", "usage_utilization.html",
                        _report("utilization", "gpu-type")),
    "util-team": Section("Utilization by team", "usage_utilization.html",
                         _report("utilization", "team")),
    "util-user": Section("Utilization by user", "usage_utilization.html",
                         _report("utilization", "user")),
    "cost-team": Section("Cost by team", "usage_cost.html", _report("cost", "team")),
    "cost-user": Section("Cost by user", "usage_cost.html", _report("cost", "user")),
    "cost-job": Section("The dearest jobs", "usage_cost.html", _report("cost", "job")),
    "waste": Section("Waste: GPUs held idle", "usage_waste.html", _report("waste")),
    "budgets": Section("Budgets", "usage_budgets.html", None),
    "amortization": Section("Owning against renting", "usage_amortization.html",
                            _report("amortization")),
}


def _since(value: str | None) -> str:
    since = value or "30d"
    if since not in PERIODS:
        parse_duration(since, "since")  # a typed period is allowed; nonsense is a 422
    return since


@router.get("/usage")
def usage(viewer: Viewer, since: str | None = None) -> Response:
    try:
        period = _since(since)
    except BadInput as e:
        return error_page(viewer, 422, str(e))
    return page("usage.html", me=viewer[0], csrf=viewer[1].csrf, since=period,
                periods=PERIODS, sections=SECTIONS)


@router.get("/usage/{name}")
def usage_section(name: str, ctl: ControllerDep, viewer: Viewer,
                  since: str | None = None) -> Response:
    section = SECTIONS.get(name)
    if section is None:
        raise HTTPException(404, f"no such section: {name}")
    period = _since(since)
    if section.load is None:  # budgets: a user sees their own teams', as `clusterctl budget`
        data: Any = budget_routes.budgets(viewer[0], ctl)
    else:
        data = section.load(ctl, period)
    return page(section.template, data=data, top=TOP)


@router.get("/admin")
def admin(ctl: ControllerDep, viewer: Viewer) -> Response:
    """Users and their teams, and the audit trail of the last 30 days (admins only, as the
    API's ``/v1/users`` and ``/v1/audit``)."""
    me = viewer[0]
    if not me.is_admin:
        return error_page(viewer, 403, "only an admin can see users and the audit trail")
    users = user_routes.list_users(me, ctl)
    teams: dict[str, list[str]] = {}
    for u in users:
        for team in u.teams:
            teams.setdefault(team, []).append(u.name)
    return page("admin.html", me=me, csrf=viewer[1].csrf, users=users,
                teams=dict(sorted(teams.items())), audit=user_routes.audit(me, ctl)[-200:][::-1])
