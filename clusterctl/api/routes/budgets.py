"""Team budgets: admins set them; everyone sees their own teams' (``clusterctl budget``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from clusterctl import parsing
from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.api.routes.users import require_admin
from clusterctl.cost.budget import BudgetStatus, parse_amount, parse_budget_period

router = APIRouter()


class BudgetIn(BaseModel):
    amount: str | float
    per: str = "month"
    enforce: bool = False
    loaded: bool = False


@router.get("/v1/budgets", response_model=list[BudgetStatus])
def budgets(user: CurrentUser, ctl: ControllerDep) -> list[BudgetStatus]:
    """Fields as ``BudgetStatus`` has them: ``spent`` as ``report cost`` charges the team this
    period, ``forecast`` at the rate so far, ``state`` ok, warning (80%) or over."""
    return [s for s in ctl.budget_status(fresh=True) if user.is_admin or s.team in user.teams]


@router.put("/v1/budgets/{team}", response_model=BudgetStatus)
def put(team: str, body: BudgetIn, user: CurrentUser, ctl: ControllerDep) -> BudgetStatus:
    name = parsing.parse_name(team, "TEAM")
    amount = parse_amount(body.amount)
    per = parse_budget_period(body.per)
    require_admin(user, "set budgets")
    ctl.budgets.put(name, amount, per, body.enforce, body.loaded)
    ctl.audit.record(user.name, "budget.set", name, f"{amount:.2f} per {per}"
                     + (", enforced" if body.enforce else ""))
    return next(s for s in ctl.budget_status(fresh=True) if s.team == name)


@router.delete("/v1/budgets/{team}")
def remove(team: str, user: CurrentUser, ctl: ControllerDep) -> dict[str, str]:
    name = parsing.parse_name(team, "TEAM")
    require_admin(user, "remove budgets")
    if not ctl.budgets.remove(name):
        raise HTTPException(404, f"team {name} has no budget")
    ctl.audit.record(user.name, "budget.remove", name)
    ctl.budget_status(fresh=True)
    return {"team": name, "removed": "yes"}
