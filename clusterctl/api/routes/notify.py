"""Webhooks: a user's own (self-service) and a team's (admins). A URL may hold a secret (Slack's
do), so it is shown to its owner only: a user's to that user, a team's to the admins."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from clusterctl import parsing
from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.api.routes.users import require_admin
from clusterctl.notifications import parse_webhook

router = APIRouter()


class NotifyIn(BaseModel):
    url: str | None = None
    """None (or absent): no webhook any more."""
    team: str | None = None
    """The team's webhook instead of your own (admins)."""


class NotifyOut(BaseModel):
    user: str
    url: str | None
    """Your own webhook: the failures, timeouts and losses of your jobs."""
    teams: dict[str, str | None]
    """Teams' webhooks (admins see them; others see only which of their teams have one)."""


def _out(user: CurrentUser, ctl: ControllerDep) -> NotifyOut:
    me = ctl.users.by_name(user.name)
    teams = {t: ctl.notify.team_url(t) for t in user.teams}
    if not user.is_admin:
        teams = {t: ("set" if url else None) for t, url in teams.items()}
    return NotifyOut(user=user.name, url=me.notify_url if me else None, teams=teams)


@router.get("/v1/notify", response_model=NotifyOut)
def show(user: CurrentUser, ctl: ControllerDep) -> NotifyOut:
    return _out(user, ctl)


@router.put("/v1/notify", response_model=NotifyOut)
def set_url(body: NotifyIn, user: CurrentUser, ctl: ControllerDep) -> NotifyOut:
    url = (parse_webhook(body.url, "URL", ctl.settings.notify_private_ok)
           if body.url is not None else None)
    if body.team is not None:
        team = parsing.parse_name(body.team, "--team")
        require_admin(user, "set a team's webhook")
        ctl.notify.set_team_url(team, url)
        ctl.audit.record(user.name, "team.notify", team, "set" if url else "cleared")
    else:
        ctl.notify.set_user_url(user.name, url)
    return _out(user, ctl)
